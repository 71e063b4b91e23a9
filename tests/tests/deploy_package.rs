//! `cryptoctl deploy --agent-deb` over ssh: the agent is installed from its Debian package (dpkg on
//! the VM), the deploy's `agent.toml` replaces the package's as shipped, and the deploy ends
//! healthy with the packaged agent running as its own user; a deploy of a newer package keeps the
//! previous one, and `rollback --agent` reinstalls it. A package built for another architecture
//! and a damaged package are refused before anything on the VM changes.
//!
//! What differs from production: the newer package is the same build repacked with a higher
//! version (`dpkg-deb -R`, then `-b`). A VM of the host's release has the build machine's root
//! underneath; a container image's `policy-rc.d` forbidding service starts is removed in the VM,
//! where a real VM has none.

use std::path::PathBuf;

use cryptobot_tests::{
    Lab, Vm,
    bot::FAST_AGENT_CONFIG,
    ctl::show,
    deploy::{DeployFleet, GROUP},
    dist_dir,
};

fn package() -> PathBuf {
    dist_dir().join(format!(
        "cryptobot-agent_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ))
}

fn installed_version(vm: &Vm) -> String {
    vm.sh("dpkg-query -W -f '${Version}' cryptobot-agent")
}

/// `cryptoctl deploy` over ssh with the agent's package instead of its binary.
fn deploy_deb(f: &DeployFleet, deb: &str, args: &[&str]) -> std::process::Output {
    f.cryptoctl(true)
        .args(["deploy", "-g", GROUP, "--repo-url"])
        .arg(f.repo.url())
        .arg("--agent-config")
        .arg(&f.config)
        .args(["--agent-deb", deb])
        .args(args)
        .output()
        .expect("cryptoctl deploy")
}

#[test]
fn deploy_installs_the_agent_package_and_rolls_it_back() {
    let f = DeployFleet::start(Lab::builder(), &["Bot01"], FAST_AGENT_CONFIG);
    let vm = f.vm(1);
    vm.sh("rm -f /usr/sbin/policy-rc.d");
    let deb = package().display().to_string();
    let over_ssh = [
        "--host",
        vm.ip.as_str(),
        "-n",
        "Bot01",
        "--gate-timeout",
        "90s",
    ];

    let out = deploy_deb(&f, &deb, &over_ssh);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(installed_version(vm), env!("CARGO_PKG_VERSION"));
    let pid = vm.unit_property("cryptobot-agent.service", "MainPID");
    assert_eq!(
        vm.sh(&format!("ps -o user= -p {pid}")).trim(),
        "cryptobot-agent"
    );
    let exec = vm.unit_property("cryptobot-agent.service", "ExecStart");
    assert!(
        exec.contains("/usr/bin/cryptobot-agent"),
        "the package's unit runs the package's binary: {exec}"
    );
    let conf = vm.read_file("/etc/cryptobot/agent.toml").unwrap();
    assert_eq!(
        conf,
        std::fs::read(&f.config).unwrap(),
        "the deploy's agent.toml replaces the package's as shipped"
    );

    // A newer package, then back to the previous one.
    let newer = format!("{}+1", env!("CARGO_PKG_VERSION"));
    let work = tempfile::tempdir().unwrap();
    let repacked = repack(
        work.path(),
        "newer.deb",
        &format!("sed -i 's/^Version: .*/Version: {newer}/' control"),
    );
    let out = deploy_deb(&f, &repacked, &over_ssh);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(installed_version(vm), newer);

    let out = f
        .cryptoctl(true)
        .args(["rollback", "-g", GROUP, "--agent"])
        .args(over_ssh)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(installed_version(vm), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        vm.unit_property("cryptobot-agent.service", "ActiveState"),
        "active"
    );
}

/// Repacks the agent's package into `dir/NAME` after `edit` (a shell command run in the
/// unpacked tree's `DEBIAN/` directory).
fn repack(dir: &std::path::Path, name: &str, edit: &str) -> String {
    let tree = dir.join(format!("{name}.tree"));
    let out = dir.join(name);
    let script = format!(
        "dpkg-deb -R '{}' '{}' && (cd '{}/DEBIAN' && {edit}) \
         && dpkg-deb --root-owner-group -b '{}' '{}' >/dev/null",
        package().display(),
        tree.display(),
        tree.display(),
        tree.display(),
        out.display()
    );
    let done = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(done.status.success(), "{script}: {done:?}");
    out.display().to_string()
}

#[test]
fn packages_for_another_architecture_or_damaged_are_refused_before_any_change() {
    let f = DeployFleet::start(Lab::builder(), &["Bot01"], FAST_AGENT_CONFIG);
    let vm = f.vm(1);
    let footprint = "ls -d /home/azureuser/Repositories /etc/systemd/system/faucet_worker.service \
                     /usr/bin/cryptobot-agent /usr/local/bin/cryptobot-agent 2>/dev/null | wc -l";
    let over_ssh = [
        "--host",
        vm.ip.as_str(),
        "-n",
        "Bot01",
        "--gate-timeout",
        "30s",
    ];
    let work = tempfile::tempdir().unwrap();

    let arm = repack(
        work.path(),
        "arm64.deb",
        "sed -i 's/^Architecture: .*/Architecture: arm64/' control",
    );
    let out = deploy_deb(&f, &arm, &over_ssh);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        show(&out).contains("the agent package is built for arm64 but the VM is amd64"),
        "{}",
        show(&out)
    );
    assert_eq!(
        vm.sh(footprint).trim(),
        "0",
        "a refused deploy changed the VM"
    );

    // The first half of the package: its header is intact, its contents are not.
    let whole = std::fs::read(package()).unwrap();
    let damaged = work.path().join("damaged.deb");
    std::fs::write(&damaged, &whole[..whole.len() / 2]).unwrap();
    let out = deploy_deb(&f, &damaged.display().to_string(), &over_ssh);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        show(&out).contains("the agent package is damaged"),
        "{}",
        show(&out)
    );
    assert_eq!(
        vm.sh(footprint).trim(),
        "0",
        "a refused deploy changed the VM"
    );
    assert!(
        !vm.run(&["dpkg-query", "-W", "cryptobot-agent"])
            .status
            .success(),
        "the damaged package was installed"
    );
}
