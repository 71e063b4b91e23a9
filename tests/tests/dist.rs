//! The agent users' VMs get, `target/dist/cryptobot-agent` from `cargo xtask dist` (run before
//! the tests, see tests/run-all.sh): it runs on glibc 2.28 or newer, whatever glibc built it, and
//! its `.sha256` is the binary's checksum in `sha256sum` format, and it carries no test hooks.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use xtask::glibc::{GlibcNeeds, GlibcVersion};

fn dist_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    assert!(
        dir.join("cryptobot-agent").is_file(),
        "{}/cryptobot-agent is missing: build it first (cargo xtask dist)",
        dir.display()
    );
    dir
}

#[test]
fn the_dist_agent_needs_glibc_2_28_at_most() {
    let agent = dist_dir().join("cryptobot-agent");
    let needs = GlibcNeeds::of_file(&agent).unwrap();
    let max: GlibcVersion = "2.28".parse().unwrap();
    // A binary that needs no GLIBC_ version at all would mean the reader missed them.
    let highest = needs.highest.expect("the agent links glibc dynamically");
    assert!(highest <= max, "{}: needs glibc {highest}", agent.display());
    assert!(needs.other.is_empty(), "{needs:?}");
}

#[test]
fn the_dist_checksum_is_the_binarys() {
    let dir = dist_dir();
    let line = std::fs::read_to_string(dir.join("cryptobot-agent.sha256")).unwrap();
    let (hex, name) = line
        .strip_suffix('\n')
        .and_then(|l| l.split_once("  "))
        .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
    assert_eq!(name, "cryptobot-agent");
    assert_eq!(hex.len(), 64, "{line:?}");
    // coreutils checks it as users would.
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "cryptobot-agent.sha256"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dist_agent_runs_here() {
    let out = Command::new(dist_dir().join("cryptobot-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let version = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("cryptobot-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_dist_agent_has_no_test_hooks() {
    let contains = |path: &Path, needle: &[u8]| {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    };
    let hook = b"CRYPTOBOT_AGENT_TEST_HOOKS";
    // The debug agent the lab tests use is built with the hooks: the search finds them there.
    assert!(contains(&cryptobot_tests::agent_bin(), hook));
    assert!(
        !contains(&dist_dir().join("cryptobot-agent"), hook),
        "the shipped agent contains the test hooks (built with the test-hooks feature?)"
    );
}
