//! `cargo xtask dist`: the agent binary users' VMs get, `target/dist/cryptobot-agent`, built to
//! run on glibc [`MAX_GLIBC`] or newer whatever glibc the build machine has, and the Debian
//! packages of the agent and of cryptoctl (same build, same glibc floor; see [`crate::packages`]).
//!
//! A plain `cargo build` links against the build machine's glibc, and its binary needs that glibc
//! or newer. cargo-zigbuild links against Zig's stubs of the glibc named in the target triple
//! instead (`x86_64-unknown-linux-gnu.2.28`). The binary is checked before it is published: a
//! needed `GLIBC_` version newer than [`MAX_GLIBC`] fails the task and leaves `target/dist` as
//! it was. Binary and checksum are each written to a temporary file and renamed into place.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    glibc::{GlibcNeeds, GlibcVersion, MAX_GLIBC},
    tools::{self, cargo, run},
};

/// The package and binary built.
pub const AGENT: &str = "cryptobot-agent";
/// The CLI's package and binary.
pub const CTL: &str = "cryptoctl";
/// The architecture of users' VMs.
const ARCH_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The workspace's root directory (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask
        .parent()
        .expect("xtask/ in the workspace")
        .to_path_buf()
}

/// cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/` in the workspace.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// Builds, checks and publishes `target/dist/cryptobot-agent` and its `.sha256`.
pub fn dist() -> Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    tools::ensure_zig()?;
    tools::ensure_cargo_zigbuild()?;

    let triple = format!("{ARCH_TRIPLE}.{}.{}", MAX_GLIBC.major, MAX_GLIBC.minor);
    run(cargo().current_dir(&root).args([
        "zigbuild",
        "--release",
        "-p",
        AGENT,
        "--bin",
        AGENT,
        "-p",
        CTL,
        "--bin",
        CTL,
        "--target",
        &triple,
    ]))?;
    let target = target_dir(&root);
    let built = target.join(ARCH_TRIPLE).join("release").join(AGENT);
    ensure!(
        built.is_file(),
        "the build succeeded but {} is missing",
        built.display()
    );

    let dist = target.join("dist");
    let needs = publish(&built, &dist, MAX_GLIBC)?;

    let binary = dist.join(AGENT);
    let checksum = dist.join(format!("{AGENT}.sha256"));
    let size = fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let shown = binary.strip_prefix(&root).unwrap_or(&binary).display();
    println!(
        "{shown}: {:.1} MB, x86_64, needs {} (at most {MAX_GLIBC} allowed)",
        size as f64 / 1e6,
        needs.describe()
    );
    println!(
        "{}",
        fs::read_to_string(&checksum)
            .context("reading the checksum back")?
            .trim_end()
    );
    let debs = packages(&root, &target, &dist)?;
    for deb in debs {
        let shown = deb
            .strip_prefix(&root)
            .unwrap_or(&deb)
            .display()
            .to_string();
        println!("{shown}");
    }
    let secs = started.elapsed().as_secs();
    println!("done in {}m{:02}s", secs / 60, secs % 60);
    Ok(())
}

/// Generates the completions and man pages, checks cryptoctl's glibc floor like the agent's, and
/// builds both packages into `dist`.
fn packages(root: &Path, target: &Path, dist: &Path) -> Result<Vec<PathBuf>> {
    let ctl = target.join(ARCH_TRIPLE).join("release").join(CTL);
    GlibcNeeds::of_file(&ctl)?
        .check(MAX_GLIBC)
        .with_context(|| format!("{} is not portable", ctl.display()))?;
    run(cargo().current_dir(root).args([
        "build",
        "-p",
        CTL,
        "--bin",
        "cryptoctl-docs",
        "-p",
        AGENT,
        "--bin",
        "cryptobot-agent-docs",
    ]))?;
    let work = target.join("deb");
    let docs = work.join("docs");
    if docs.exists() {
        fs::remove_dir_all(&docs)?;
    }
    let debug = target.join("debug");
    for tool in ["cryptoctl-docs", "cryptobot-agent-docs"] {
        run(Command::new(debug.join(tool)).arg(&docs))?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let changelog = fs::read_to_string(root.join("deploy/debian/changelog"))?;
    ensure!(
        changelog.starts_with(&format!("cryptobot-health ({version}) ")),
        "deploy/debian/changelog does not start with version {version}"
    );
    let inputs = crate::packages::Inputs {
        root,
        agent: &dist.join(AGENT),
        cryptoctl: &ctl,
        docs: &docs,
        version,
    };
    [
        crate::packages::agent(&inputs)?,
        crate::packages::cryptoctl(&inputs)?,
    ]
    .iter()
    .map(|p| p.build(&work, dist))
    .collect()
}

/// Copies the `built` agent into `dist` with its `.sha256` once it is checked to need glibc
/// `max` at most; on any failure `dist` is left as it was.
pub fn publish(built: &Path, dist: &Path, max: GlibcVersion) -> Result<GlibcNeeds> {
    fs::create_dir_all(dist).with_context(|| format!("creating {}", dist.display()))?;
    let binary = dist.join(AGENT);
    let checksum = dist.join(format!("{AGENT}.sha256"));
    let tmp_binary = dist.join(format!(".{AGENT}.{}.tmp", std::process::id()));
    let tmp_checksum = dist.join(format!(".{AGENT}.sha256.{}.tmp", std::process::id()));
    let attempt = || -> Result<GlibcNeeds> {
        fs::copy(built, &tmp_binary)
            .with_context(|| format!("copying {} to {}", built.display(), dist.display()))?;
        let needs = GlibcNeeds::of_file(&tmp_binary)?;
        needs
            .check(max)
            .with_context(|| format!("{} is not portable", built.display()))?;
        let hex = sha256_hex(&tmp_binary)?;
        fs::write(&tmp_checksum, format!("{hex}  {AGENT}\n"))
            .with_context(|| format!("writing {}", tmp_checksum.display()))?;
        fs::rename(&tmp_binary, &binary)
            .with_context(|| format!("renaming into {}", binary.display()))?;
        fs::rename(&tmp_checksum, &checksum)
            .with_context(|| format!("renaming into {}", checksum.display()))?;
        Ok(needs)
    };
    attempt().inspect_err(|_| {
        let _ = fs::remove_file(&tmp_binary);
        let _ = fs::remove_file(&tmp_checksum);
    })
}

/// The SHA-256 of a file in lower-case hex, from coreutils' `sha256sum`.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg("--")
        .arg(path)
        .output()
        .context("cannot run sha256sum")?;
    if !out.status.success() {
        bail!(
            "sha256sum {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected sha256sum output: {text:?}"
    );
    Ok(hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn publishes_the_binary_and_its_checksum() {
        let scratch = Scratch::new("publish");
        let exe = std::env::current_exe().unwrap();
        let any = GlibcVersion {
            major: 99,
            minor: 0,
            patch: 0,
        };
        let needs = publish(&exe, &scratch.0, any).unwrap();
        assert!(needs.highest.is_some());
        let files = listing(&scratch.0);
        let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [AGENT, "cryptobot-agent.sha256"]);
        assert_eq!(files[0].1, fs::read(&exe).unwrap());
        let hex = sha256_hex(&exe).unwrap();
        assert_eq!(
            String::from_utf8(files[1].1.clone()).unwrap(),
            format!("{hex}  cryptobot-agent\n")
        );
    }

    #[test]
    fn a_binary_needing_a_newer_glibc_changes_nothing() {
        let scratch = Scratch::new("refuse");
        fs::write(scratch.0.join(AGENT), "previous").unwrap();
        fs::write(scratch.0.join("cryptobot-agent.sha256"), "previous sum").unwrap();
        let before = listing(&scratch.0);
        // Every dynamically linked glibc program needs a version newer than 2.0.
        let too_old = GlibcVersion {
            major: 2,
            minor: 0,
            patch: 0,
        };
        let exe = std::env::current_exe().unwrap();
        let err = publish(&exe, &scratch.0, too_old).unwrap_err();
        assert!(format!("{err:#}").contains("newer than 2.0"), "{err:#}");
        assert_eq!(listing(&scratch.0), before);
    }
}
