//! The files in `deploy/` on a lab VM: the units verify, the agent runs sandboxed as its own user,
//! that user may restart the worker and nothing else, and the sandbox's exposure score holds.

use std::time::Duration;

use cryptobot_tests::{
    Lab,
    agent::{
        AGENT_UNIT, deploy_dir, install_deployed_agent, kill_worker, wait_worker_back,
        worker_without_restart,
    },
};

/// The `systemd-analyze security` exposure level the README states for the agent's unit.
const MAX_EXPOSURE: f64 = 1.5;

const CONFIG: &str = "[daemon]\ninterval = \"2s\"\n[restart]\ninitial_delay = \"1s\"\n";

fn busctl_as_agent(vm: &cryptobot_tests::Vm, method: &str, unit: &str) -> std::process::Output {
    cryptobot_tests::agent::manager_call_as_agent(vm, method, unit)
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    // what the units refer to on a deployed VM
    vm.sh("useradd --create-home azureuser && mkdir -p /home/azureuser/Repositories/cryptobot/.venv/bin \
           && ln -s /usr/bin/python3 /home/azureuser/Repositories/cryptobot/.venv/bin/python \
           && touch /home/azureuser/Repositories/cryptobot/.env");
    vm.write_file(
        "/usr/local/bin/cryptobot-agent",
        std::fs::read(cryptobot_tests::agent_bin()).unwrap(),
    );
    vm.sh("chmod 755 /usr/local/bin/cryptobot-agent");
    for unit in [
        "cryptobot-agent.service",
        "faucet_worker.service",
        "cryptobot-worker-restart.path",
        "cryptobot-worker-restart.service",
    ] {
        vm.write_file(
            &format!("/srv/units/{unit}"),
            std::fs::read(deploy_dir().join(unit)).unwrap(),
        );
        let out = vm.run(&["systemd-analyze", "verify", &format!("/srv/units/{unit}")]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !said.contains(unit),
            "{unit}: {said}"
        );
    }
}

#[test]
fn the_agent_runs_as_its_own_user_and_may_restart_only_the_worker() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    install_deployed_agent(vm, CONFIG);
    let pid = vm.unit_property(AGENT_UNIT, "MainPID");
    let user = vm.sh(&format!("ps -o user= -p {pid}"));
    assert_eq!(user.trim(), "cryptobot-agent");
    // the agent brings a crashed worker back through polkit, as its own user
    let worker = kill_worker(vm);
    wait_worker_back(vm, &worker, Duration::from_secs(8));
    vm.wait_journal(AGENT_UNIT, "Worker restarted.", Duration::from_secs(5));
    // the same user may restart the worker by hand, but no other unit
    assert!(
        busctl_as_agent(vm, "RestartUnit", "faucet_worker.service")
            .status
            .success()
    );
    let denied = busctl_as_agent(vm, "RestartUnit", "systemd-journald.service");
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Interactive authentication required"),
        "{denied:?}"
    );
    assert!(
        !busctl_as_agent(vm, "StopUnit", "faucet_worker.service")
            .status
            .success(),
        "stop is not granted"
    );
}

#[test]
fn the_agent_sandbox_keeps_its_exposure_score() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    install_deployed_agent(vm, CONFIG);
    let out = vm.sh(&format!("systemd-analyze security --no-pager {AGENT_UNIT}"));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("exposure line");
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line:?}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} is worse than {MAX_EXPOSURE}: {line}"
    );
}
