//! `cryptobot-agent run` as a `Type=notify` unit with a watchdog inside lab VMs: readiness, status
//! line, restarts with backoff, deliberate stops, pause, state that survives kill -9, corrupt state,
//! and the watchdog catching a wedged loop.

use std::time::{Duration, Instant};

use cryptobot_tests::{
    Lab,
    agent::{
        AGENT_UNIT, backoff_state, kill_worker, start_agent, wait_worker_back,
        worker_without_restart,
    },
    wait_until,
};

const WORKER: &str = "faucet_worker.service";
/// Short delays so the schedule can be observed: 1 s, 2 s, 4 s (cap).
const FAST: &str = "[daemon]\ninterval = \"2s\"\n[restart]\ninitial_delay = \"1s\"\nfactor = 2\nmax_delay = \"4s\"\nstable_after = \"1h\"\n";

#[test]
fn ready_with_a_status_line_visible_through_systemd() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, FAST, 5);
    assert_eq!(vm.unit_property(AGENT_UNIT, "Type"), "notify");
    let status = vm.unit_property(AGENT_UNIT, "StatusText");
    assert!(status.starts_with("HEALTHY · disk "), "{status}");
    assert!(
        status.contains(" · mem ") && status.contains(" · heartbeat "),
        "{status}"
    );
    let shown = vm.systemctl(&format!("status {AGENT_UNIT}"));
    assert!(shown.contains("Status: \"HEALTHY · disk"), "{shown}");
}

#[test]
fn crash_is_seen_at_once_and_restarts_follow_the_doubling_schedule_to_the_cap() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    start_agent(vm, FAST, 5);
    for (n, delay) in [(1, 1), (2, 2), (3, 4), (4, 4)] {
        let killed_at = Instant::now();
        let pid = kill_worker(vm);
        wait_until("the agent to see the crash", Duration::from_secs(1), || {
            vm.unit_property(AGENT_UNIT, "StatusText")
                .starts_with("CRITICAL")
        });
        wait_worker_back(vm, &pid, Duration::from_secs(delay + 5));
        let took = killed_at.elapsed();
        assert!(
            took >= Duration::from_secs(delay),
            "restart {n} after {took:?}, before its {delay}s delay"
        );
        let state = backoff_state(vm);
        assert_eq!(state["restart_count"], n, "{state}");
        let next = [2, 4, 4, 4][n as usize - 1];
        assert_eq!(state["backoff_seconds"], next, "{state}");
    }
}

#[test]
fn backoff_resets_only_after_the_stable_period() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    start_agent(
        vm,
        &FAST.replace("stable_after = \"1h\"", "stable_after = \"4s\""),
        5,
    );
    let pid = kill_worker(vm);
    wait_worker_back(vm, &pid, Duration::from_secs(6));
    let back_at = Instant::now();
    assert_eq!(
        backoff_state(vm)["restart_count"],
        1,
        "not reset at the first healthy sample"
    );
    wait_until("the backoff to reset", Duration::from_secs(15), || {
        backoff_state(vm)["restart_count"] == 0
    });
    assert!(
        back_at.elapsed() >= Duration::from_secs(3),
        "reset after {:?}",
        back_at.elapsed()
    );
    assert_eq!(backoff_state(vm)["backoff_seconds"], 1);
}

#[test]
fn start_limit_hit_is_recovered() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    vm.write_file(
        "/etc/systemd/system/faucet_worker.service.d/limit.conf",
        "[Unit]\nStartLimitIntervalSec=1h\nStartLimitBurst=3\n[Service]\nRestart=always\nRestartSec=50ms\n",
    );
    vm.systemctl("daemon-reload");
    // the worker exits at every start until told otherwise: systemd gives up on it
    vm.write_file("/run/fake-worker/crash-at-start", "");
    let _ = vm.run(&["systemctl", "restart", WORKER]);
    wait_until("systemd to give up", Duration::from_secs(10), || {
        vm.journal(WORKER)
            .contains("Start request repeated too quickly")
            && vm.unit_property(WORKER, "ActiveState") == "failed"
    });
    std::fs::remove_file(vm.host_path("/run/fake-worker/crash-at-start")).unwrap();
    // a plain start is refused now: the start limit is in force
    let refused = vm.run(&["systemctl", "start", WORKER]);
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(vm.unit_property(WORKER, "ActiveState"), "failed");
    start_agent(vm, FAST, 5);
    vm.wait_active_state(WORKER, "active", Duration::from_secs(10));
    assert_eq!(
        backoff_state(vm)["restart_count"],
        1,
        "recovered at the first attempt"
    );
}

#[test]
fn deliberate_stop_and_pause_are_respected() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    start_agent(vm, FAST, 5);
    vm.systemctl("stop faucet_worker");
    // well past the 1 s delay, the agent has not touched the unit stopped on purpose
    wait_until(
        "the agent to report the stop",
        Duration::from_secs(2),
        || {
            vm.unit_property(AGENT_UNIT, "StatusText")
                .starts_with("CRITICAL")
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(vm.unit_property(WORKER, "ActiveState"), "inactive");
    assert!(!vm.journal(AGENT_UNIT).contains("Restarting the worker"));

    // a paused agent does not restart a crashed worker either
    vm.systemctl("start faucet_worker");
    vm.write_file(
        "/var/lib/cryptobot-agent/maintenance.json",
        "{\"since\": \"2026-01-01T00:00:00Z\", \"until\": null}",
    );
    vm.systemctl(&format!("restart {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(10));
    kill_worker(vm);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(vm.unit_property(WORKER, "ActiveState"), "failed");
    assert!(!vm.journal(AGENT_UNIT).contains("Restarting the worker"));
}

#[test]
fn kill_9_of_the_agent_keeps_the_backoff_state() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    start_agent(vm, FAST, 5);
    for _ in 0..2 {
        let pid = kill_worker(vm);
        wait_worker_back(vm, &pid, Duration::from_secs(8));
    }
    assert_eq!(backoff_state(vm)["restart_count"], 2);
    let agent_pid = vm.unit_property(AGENT_UNIT, "MainPID");
    vm.sh(&format!("kill -9 {agent_pid}"));
    wait_until(
        "systemd to restart the agent",
        Duration::from_secs(10),
        || {
            vm.unit_property(AGENT_UNIT, "ActiveState") == "active"
                && vm.unit_property(AGENT_UNIT, "MainPID") != agent_pid
        },
    );
    let state = backoff_state(vm);
    assert_eq!(
        (
            state["restart_count"].as_u64(),
            state["backoff_seconds"].as_u64()
        ),
        (Some(2), Some(4))
    );
    // the next crash waits the persisted 4 s, not the initial 1 s
    let killed_at = Instant::now();
    let pid = kill_worker(vm);
    wait_worker_back(vm, &pid, Duration::from_secs(10));
    assert!(
        killed_at.elapsed() >= Duration::from_secs(4),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(backoff_state(vm)["restart_count"], 3);
}

#[test]
fn corrupt_state_is_moved_aside_and_reported() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    vm.write_file(
        "/var/lib/cryptobot-agent/restart_backoff.json",
        "{\"restart_count\": 3, \"backoff",
    );
    start_agent(vm, FAST, 5);
    let listing = vm.sh("ls /var/lib/cryptobot-agent");
    let aside: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("restart_backoff.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{listing}");
    assert_eq!(
        vm.read_file(&format!("/var/lib/cryptobot-agent/{}", aside[0]))
            .unwrap(),
        b"{\"restart_count\": 3, \"backoff"
    );
    vm.wait_journal(AGENT_UNIT, "restart state reset", Duration::from_secs(5));
    assert!(
        vm.journal(AGENT_UNIT).contains("corrupt"),
        "{}",
        vm.journal(AGENT_UNIT)
    );
    // and the agent works from a fresh state
    worker_without_restart(vm);
    let pid = kill_worker(vm);
    wait_worker_back(vm, &pid, Duration::from_secs(6));
    assert_eq!(backoff_state(vm)["restart_count"], 1);
}

#[test]
fn the_watchdog_restarts_a_wedged_agent() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, FAST, 2);
    let pid = vm.unit_property(AGENT_UNIT, "MainPID");
    vm.write_file("/var/lib/cryptobot-agent/wedge-main-loop", "");
    wait_until(
        "systemd's watchdog to fire",
        Duration::from_secs(10),
        || vm.journal(AGENT_UNIT).contains("Watchdog timeout"),
    );
    std::fs::remove_file(vm.host_path("/var/lib/cryptobot-agent/wedge-main-loop")).unwrap();
    wait_until("the agent to be back", Duration::from_secs(10), || {
        vm.unit_property(AGENT_UNIT, "ActiveState") == "active"
            && vm.unit_property(AGENT_UNIT, "MainPID") != pid
    });
}

#[test]
fn sigterm_stops_the_agent_cleanly_and_quickly() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, FAST, 5);
    let started = Instant::now();
    vm.systemctl(&format!("stop {AGENT_UNIT}"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(vm.unit_property(AGENT_UNIT, "Result"), "success");
    vm.wait_journal(AGENT_UNIT, "Agent stopped.", Duration::from_secs(5));
}

#[test]
fn a_hung_worker_is_restarted() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(
        vm,
        &FAST
            .replace("[restart]\n", "[restart]\nhung_after = \"3s\"\n")
            .replace("interval = \"2s\"", "interval = \"1s\""),
        5,
    );
    let pid = vm.unit_property(WORKER, "MainPID");
    vm.write_file("/run/fake-worker/hang", "");
    wait_worker_back(vm, &pid, Duration::from_secs(20));
    std::fs::remove_file(vm.host_path("/run/fake-worker/hang")).unwrap();
    vm.wait_journal(
        AGENT_UNIT,
        "reason=worker hung (heartbeat ",
        Duration::from_secs(5),
    );
}

#[test]
fn systemd_restarts_count_toward_the_crash_loop() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, FAST, 5);
    for n in 1..=6 {
        let pid = kill_worker(vm);
        wait_until(
            &format!("systemd's restart {n}"),
            Duration::from_secs(10),
            || {
                vm.unit_property(WORKER, "NRestarts") == n.to_string()
                    && vm.unit_property(WORKER, "MainPID") != pid
            },
        );
    }
    wait_until("the crash-loop warning", Duration::from_secs(5), || {
        vm.unit_property(AGENT_UNIT, "StatusText")
            .starts_with("WARNING · disk ")
            && vm
                .unit_property(AGENT_UNIT, "StatusText")
                .ends_with("Service has restarted 6 times - possible crash loop")
    });
    // the count lives in the agent's state, so it survives an agent restart
    vm.systemctl(&format!("restart {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(10));
    let status = vm.unit_property(AGENT_UNIT, "StatusText");
    assert!(
        status.ends_with("Service has restarted 6 times - possible crash loop"),
        "{status}"
    );
}

#[test]
fn one_shot_check_can_restart_with_the_same_backoff() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    vm.write_file(cryptobot_tests::agent::AGENT_CONFIG, FAST);
    let check = || {
        vm.command(cryptobot_tests::agent_bin())
            .args([
                "--config",
                cryptobot_tests::agent::AGENT_CONFIG,
                "check",
                "--restart",
            ])
            .output()
            .unwrap()
    };
    let pid = kill_worker(vm);
    vm.wait_active_state(WORKER, "failed", Duration::from_secs(5));
    let first = check();
    assert_eq!(first.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("restart: not before"),
        "{first:?}"
    );
    wait_until(
        "a later check to restart the worker",
        Duration::from_secs(10),
        || {
            let out = check();
            String::from_utf8_lossy(&out.stderr)
                .contains("restarted, faucet_worker.service is active")
        },
    );
    wait_worker_back(vm, &pid, Duration::from_secs(5));
    assert_eq!(backoff_state(vm)["restart_count"], 1);
    assert_eq!(backoff_state(vm)["backoff_seconds"], 2);
}
