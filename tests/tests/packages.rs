//! The Debian packages of `cargo xtask dist` (run before the tests, see tests/run-all.sh), as
//! users meet them. `lintian` accepts both. On a fresh VM of each supported release (Debian 11, the
//! host's 12, and 13): `dpkg -i` of the agent's package gives a running agent as its own user with
//! `/health` saying HEALTHY; installing the same version again changes nothing (not even the agent's
//! process); a newer build restarts the agent and keeps an edited `agent.toml`; `apt-get remove`
//! stops it and keeps its state and configuration; `purge` deletes both. With the cryptoctl
//! package installed, bash's completion loader finds its completion and `man -w` its pages.
//!
//! What differs from production: the "newer build" is the same package repacked with a higher
//! version (`dpkg-deb -R`, then `-b`), since one source tree builds one version. A VM of the
//! host's release has the build machine's root underneath; when that is a container image with a
//! `policy-rc.d` forbidding service starts (as Docker's images have), the test removes it inside
//! the VM, where a real VM has none.

use std::{path::PathBuf, time::Duration};

use cryptobot_tests::{Lab, Release, Vm, dist_dir, require_tool, wait_until};

const AGENT: &str = "cryptobot-agent.service";
const CONFIG: &str = "/etc/cryptobot/agent.toml";
const STATE: &str = "/var/lib/cryptobot-agent";

fn package(name: &str) -> PathBuf {
    let deb = dist_dir().join(format!("{name}_{}_amd64.deb", env!("CARGO_PKG_VERSION")));
    assert!(
        deb.is_file(),
        "{} is missing: build it first (cargo xtask dist)",
        deb.display()
    );
    deb
}

#[test]
fn lintian_accepts_both_packages() {
    require_tool("lintian", "lintian");
    for name in ["cryptobot-agent", "cryptoctl"] {
        let out = std::process::Command::new("lintian")
            .args(["--fail-on", "error,warning", "--no-tag-display-limit"])
            .arg(package(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lintian {name}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `sh -c` in the VM; panics with the output when it fails.
fn ok(vm: &Vm, script: &str) -> String {
    let out = vm.run(&["sh", "-c", script]);
    assert!(
        out.status.success(),
        "{script}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main_pid(vm: &Vm) -> String {
    vm.unit_property(AGENT, "MainPID")
}

/// `/health` answers 200: the agent's report is HEALTHY.
fn healthy(vm: &Vm) -> bool {
    let out = vm.run(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "3",
        "http://127.0.0.1:8080/health",
    ]);
    String::from_utf8_lossy(&out.stdout) == "200"
}

fn lifecycle(release: Release) {
    let lab = Lab::builder().release(release).start();
    let vm = lab.vm(1);
    let deb = package("cryptobot-agent");
    let deb = deb.display().to_string();
    ok(vm, "rm -f /usr/sbin/policy-rc.d");

    // Install: enabled, started, its own user, /health answering.
    ok(vm, &format!("DEBIAN_FRONTEND=noninteractive dpkg -i {deb}"));
    vm.wait_active_state(AGENT, "active", Duration::from_secs(20));
    assert_eq!(vm.unit_property(AGENT, "UnitFileState"), "enabled");
    assert_eq!(
        vm.unit_property("cryptobot-worker-restart.path", "ActiveState"),
        "active"
    );
    let user = ok(vm, &format!("ps -o user= -p {}", main_pid(vm)));
    assert_eq!(user.trim(), "cryptobot-agent");
    wait_until(
        "/health to be 200 (HEALTHY)",
        Duration::from_secs(15),
        || healthy(vm),
    );

    // The same version again changes nothing.
    ok(vm, &format!("echo '# kept across upgrades' >> {CONFIG}"));
    let edited = vm.read_file(CONFIG).unwrap();
    let pid = main_pid(vm);
    ok(vm, &format!("dpkg -i {deb}"));
    assert_eq!(
        main_pid(vm),
        pid,
        "reinstalling the same version restarted the agent"
    );
    assert_eq!(vm.read_file(CONFIG).unwrap(), edited);

    // A newer build: restarted, the edited configuration kept.
    let newer = format!("{}+1", env!("CARGO_PKG_VERSION"));
    ok(
        vm,
        &format!(
            "rm -rf /tmp/pkg && dpkg-deb -R {deb} /tmp/pkg \
             && sed -i 's/^Version: .*/Version: {newer}/' /tmp/pkg/DEBIAN/control \
             && dpkg-deb --root-owner-group -b /tmp/pkg /tmp/newer.deb >/dev/null"
        ),
    );
    ok(
        vm,
        "DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/newer.deb </dev/null",
    );
    wait_until("the upgraded agent", Duration::from_secs(20), || {
        vm.unit_property(AGENT, "ActiveState") == "active" && main_pid(vm) != pid
    });
    assert_eq!(
        vm.read_file(CONFIG).unwrap(),
        edited,
        "agent.toml was replaced"
    );
    let version = ok(vm, "dpkg-query -W -f '${Version}' cryptobot-agent");
    assert_eq!(version, newer);

    // Remove: stopped, state and configuration kept.
    ok(
        vm,
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q cryptobot-agent",
    );
    assert_ne!(vm.unit_property(AGENT, "ActiveState"), "active");
    assert!(
        vm.run(&["test", "-d", STATE]).status.success(),
        "{STATE} removed with the package"
    );
    assert_eq!(vm.read_file(CONFIG).unwrap(), edited);
    assert!(
        !vm.run(&["test", "-e", "/usr/bin/cryptobot-agent"])
            .status
            .success()
    );

    // Purge: both gone.
    ok(
        vm,
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cryptobot-agent",
    );
    assert!(
        !vm.run(&["test", "-e", STATE]).status.success(),
        "{STATE} left after purge"
    );
    assert!(
        !vm.run(&["test", "-e", CONFIG]).status.success(),
        "{CONFIG} left after purge"
    );
}

#[test]
fn agent_package_on_debian_11() {
    lifecycle(Release::Bullseye);
}

#[test]
fn agent_package_on_debian_12() {
    lifecycle(Release::Host);
}

#[test]
fn agent_package_on_debian_13() {
    lifecycle(Release::Trixie);
}

/// On the host's release (whose VMs have bash-completion and man-db from tests/setup.sh): what an
/// operator's shell finds once the package is installed. bash loads a completion from
/// `/usr/share/bash-completion/completions` when the command is first completed; the test calls
/// that loader, as pressing Tab does, then asks `complete -p`.
#[test]
fn cryptoctl_package_brings_completions_and_man_pages() {
    require_tool("man", "man-db");
    let lab = Lab::builder().worker(false).start();
    let vm = lab.vm(1);
    let deb = package("cryptoctl");
    ok(vm, &format!("dpkg -i {}", deb.display()));
    let version = ok(vm, "cryptoctl --version");
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let spec = ok(
        vm,
        "HOME=/root bash -ic '. /usr/share/bash-completion/bash_completion; \
         _completion_loader cryptoctl; complete -p cryptoctl' 2>/dev/null",
    );
    assert!(spec.contains("cryptoctl"), "{spec}");
    for page in ["cryptoctl", "cryptoctl-health", "cryptoctl-deploy"] {
        let path = ok(vm, &format!("man -w {page}"));
        assert!(path.trim().ends_with(&format!("{page}.1.gz")), "{path}");
    }
    ok(vm, "test -f /usr/share/zsh/vendor-completions/_cryptoctl");
    ok(
        vm,
        "test -f /usr/share/fish/vendor_completions.d/cryptoctl.fish",
    );
}
