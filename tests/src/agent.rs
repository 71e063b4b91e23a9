//! Running `cryptobot-agent run` as a systemd unit inside a lab VM, the way it runs on a real VM:
//! `Type=notify` with a watchdog.

use std::time::Duration;

use crate::{Vm, agent_bin, wait_until};

/// The agent's unit name in the VMs.
pub const AGENT_UNIT: &str = "cryptobot-agent.service";
/// Where the tests put the agent's configuration.
pub const AGENT_CONFIG: &str = "/etc/cryptobot/agent.toml";

/// Writes `config` and the agent's unit (`WatchdogSec=watchdog_secs`, test hooks on), starts it,
/// and waits until systemd reports it active (that is, after READY=1).
pub fn start_agent(vm: &Vm, config: &str, watchdog_secs: u32) {
    vm.write_file(AGENT_CONFIG, config);
    vm.install_unit(
        AGENT_UNIT,
        &format!(
            "[Unit]\nDescription=cryptobot-agent (lab)\n\n[Service]\nType=notify\n\
             ExecStart={} --config {AGENT_CONFIG} run\nWatchdogSec={watchdog_secs}\n\
             Restart=on-failure\nRestartSec=200ms\nEnvironment=CRYPTOBOT_AGENT_TEST_HOOKS=1\n",
            agent_bin().display()
        ),
    );
    vm.systemctl(&format!("start {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
}

/// Makes the stand-in worker `Restart=no`, so only the agent brings it back.
pub fn worker_without_restart(vm: &Vm) {
    vm.write_file(
        "/etc/systemd/system/faucet_worker.service.d/restart.conf",
        "[Service]\nRestart=no\n",
    );
    vm.systemctl("daemon-reload");
}

/// The agent's persisted restart state.
pub fn backoff_state(vm: &Vm) -> serde_json::Value {
    let bytes = vm
        .read_file("/var/lib/cryptobot-agent/restart_backoff.json")
        .expect("restart_backoff.json");
    serde_json::from_slice(&bytes).expect("restart_backoff.json is JSON")
}

/// Kills the worker's main process with SIGKILL and returns the pid killed.
pub fn kill_worker(vm: &Vm) -> String {
    let pid = vm.unit_property("faucet_worker.service", "MainPID");
    assert_ne!(pid, "0", "the worker is not running");
    vm.sh(&format!("kill -9 {pid}"));
    pid
}

/// Waits until the worker runs again with a main process other than `old_pid`.
pub fn wait_worker_back(vm: &Vm, old_pid: &str, timeout: Duration) {
    wait_until("the worker to run again", timeout, || {
        vm.unit_property("faucet_worker.service", "ActiveState") == "active"
            && vm.unit_property("faucet_worker.service", "MainPID") != old_pid
    });
}

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Installs the agent the way a deploy does: the binary in /usr/local/bin, the shipped unit, its
/// system user (sysusers), the polkit rule, the restart helper and `config`; then starts it as its
/// own user.
pub fn install_deployed_agent(vm: &Vm, config: &str) {
    let deploy = deploy_dir();
    let read = |name: &str| {
        std::fs::read(deploy.join(name)).unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
    };
    vm.write_file(
        "/usr/local/bin/cryptobot-agent",
        std::fs::read(agent_bin()).expect("agent binary"),
    );
    vm.sh("chmod 755 /usr/local/bin/cryptobot-agent");
    vm.write_file(
        "/usr/lib/sysusers.d/cryptobot-agent.conf",
        read("cryptobot-agent.sysusers"),
    );
    vm.write_file(
        "/etc/polkit-1/rules.d/50-cryptobot-agent.rules",
        read("cryptobot-agent.rules"),
    );
    vm.write_file(AGENT_CONFIG, config);
    vm.write_file(
        "/etc/systemd/system/cryptobot-agent.service",
        read("cryptobot-agent.service"),
    );
    for unit in [
        "cryptobot-worker-restart.path",
        "cryptobot-worker-restart.service",
    ] {
        vm.write_file(&format!("/etc/systemd/system/{unit}"), read(unit));
    }
    vm.sh("systemd-sysusers && systemctl daemon-reload");
    vm.systemctl("enable --now cryptobot-worker-restart.path");
    vm.systemctl(&format!("start {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
}

/// Runs `args` in `vm` as the agent's system user.
pub fn as_agent(vm: &Vm, args: &[&str]) -> std::process::Output {
    let mut all = vec!["runuser", "-u", "cryptobot-agent", "--"];
    all.extend_from_slice(args);
    vm.run(&all)
}

/// Calls the systemd manager's `method` (`RestartUnit`, `StopUnit`, ...) on `unit` as the agent's
/// user, over D-Bus with `busctl`.
pub fn manager_call_as_agent(vm: &Vm, method: &str, unit: &str) -> std::process::Output {
    as_agent(
        vm,
        &[
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            method,
            "ss",
            unit,
            "replace",
        ],
    )
}
