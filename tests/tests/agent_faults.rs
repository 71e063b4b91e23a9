//! The agent when what it depends on fails: the VM's D-Bus daemon restarts, its state directory is
//! full.

use std::time::{Duration, Instant};

use cryptobot_tests::{
    Lab, Vm,
    agent::{AGENT_UNIT, start_agent},
    wait_until,
};

fn health(vm: &Vm) -> (u16, serde_json::Value) {
    let out = vm.run(&[
        "curl",
        "-s",
        "-m",
        "5",
        "-w",
        "\n%{http_code}",
        "http://127.0.0.1:8080/health",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("null", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn a_restarted_dbus_daemon_is_reconnected_within_five_seconds() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, "[daemon]\ninterval = \"1m\"\n", 5);
    wait_until("healthy", Duration::from_secs(5), || health(vm).0 == 200);
    let pid = vm.unit_property(AGENT_UNIT, "MainPID");
    let restarted = Instant::now();
    vm.systemctl("restart dbus.service");
    wait_until(
        "the agent to notice and reconnect",
        Duration::from_secs(5),
        || vm.journal(AGENT_UNIT).contains("D-Bus connection lost") && health(vm).0 == 200,
    );
    eprintln!(
        "healthy again {:?} after the D-Bus restart",
        restarted.elapsed()
    );
    // the UNKNOWN spell is in the event history, and the agent never exited
    assert!(
        vm.journal(AGENT_UNIT)
            .contains("HEALTHY -> UNKNOWN: Service state unknown")
    );
    assert_eq!(vm.unit_property(AGENT_UNIT, "MainPID"), pid);
    assert_eq!(vm.unit_property(AGENT_UNIT, "NRestarts"), "0");
    // and it still follows the worker over the new connection
    let worker = vm.unit_property("faucet_worker.service", "MainPID");
    vm.sh(&format!("kill -9 {worker}"));
    wait_until("the crash to be seen", Duration::from_secs(2), || {
        health(vm).0 == 503
    });
}

#[test]
fn a_full_state_directory_is_a_warning_and_the_agent_keeps_serving() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    vm.sh(
        "mkdir -p /var/lib/cryptobot-agent && mount -t tmpfs -o size=16k tmpfs /var/lib/cryptobot-agent \
         && (dd if=/dev/zero of=/var/lib/cryptobot-agent/fill bs=4k count=16 2>/dev/null || true)",
    );
    start_agent(vm, "[daemon]\ninterval = \"1s\"\n", 5);
    wait_until("the state warning", Duration::from_secs(10), || {
        let (code, v) = health(vm);
        code == 503
            && v["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|t| {
                    t.as_str()
                        .unwrap_or("")
                        .starts_with("Agent state cannot be saved:")
                })
            })
    });
    let (_, v) = health(vm);
    let text = v["alerts"][0].as_str().unwrap().to_owned();
    assert!(text.contains("No space left on device"), "{text}");
    assert_eq!(v["status"], "warning");
    // space again: the warning clears by itself
    vm.sh("rm /var/lib/cryptobot-agent/fill");
    wait_until("the warning to clear", Duration::from_secs(10), || {
        health(vm).0 == 200
    });
}
