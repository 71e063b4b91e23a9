//! The daemon's gRPC API and local commands inside a lab VM: a Watch client sees a crash at once,
//! and `status`, `pause`, `resume`, `restart` work against the running agent over its unix socket.

use std::time::{Duration, Instant};

use cryptobot_proto::v1::{HealthStatus, WatchStatusRequest, agent_client::AgentClient};
use cryptobot_tests::{
    Lab, Vm,
    agent::{
        AGENT_CONFIG, backoff_state, kill_worker, start_agent, wait_worker_back,
        worker_without_restart,
    },
    agent_bin, json_of, wait_until,
};

const FAST: &str = "[daemon]\ninterval = \"2s\"\n[restart]\ninitial_delay = \"1s\"\n";

fn agent_cmd(vm: &Vm, args: &[&str]) -> std::process::Output {
    vm.command(agent_bin())
        .args(["--config", AGENT_CONFIG])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_watch_client_sees_the_crash_at_once() {
    let lab = Lab::start(1);
    let vm = lab.vm(1).clone();
    start_agent(
        &vm,
        "[daemon]\ninterval = \"1m\"\n[restart]\nenabled = false\n",
        5,
    );
    // the VM's /run is visible from the host, and so is the agent's socket in it
    let socket = vm.run_dir.join("cryptobot-agent/agent.sock");
    let channel = cryptobot_agent::client::unix_channel(&socket)
        .await
        .expect("connect to the agent");
    let mut client = AgentClient::new(channel);
    let mut stream = client
        .watch_status(WatchStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream
        .message()
        .await
        .unwrap()
        .expect("the current snapshot");
    assert_eq!(first.status(), HealthStatus::Healthy, "{first:?}");
    let killed = Instant::now();
    let v = vm.clone();
    tokio::task::spawn_blocking(move || kill_worker(&v))
        .await
        .unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let s = stream.message().await.unwrap().expect("stream open");
            if s.status() != HealthStatus::Healthy {
                return s;
            }
        }
    })
    .await
    .expect("a non-healthy snapshot within a second");
    eprintln!(
        "watch saw {:?} after {:?}",
        changed.status(),
        killed.elapsed()
    );
    assert!(!changed.serving);
    assert!(!changed.alerts.is_empty());
}

#[test]
fn local_commands_against_the_running_agent() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    worker_without_restart(vm);
    start_agent(vm, FAST, 5);

    let out = agent_cmd(vm, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["status"], "HEALTHY");
    assert!(v["daemon"]["backoff"]["backoff_seconds"].is_u64(), "{v}");
    let text = String::from_utf8_lossy(&agent_cmd(vm, &["status"]).stdout).into_owned();
    assert!(text.contains("Overall Status: HEALTHY"), "{text}");

    // paused: a crash is not repaired
    let out = agent_cmd(vm, &["pause", "--for", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(json_of(&agent_cmd(vm, &["status", "--json"]))["daemon"]["pause"]["until"].is_string());
    let pid = kill_worker(vm);
    wait_until("the crash to show", Duration::from_secs(2), || {
        agent_cmd(vm, &["status"]).status.code() == Some(2)
    });
    std::thread::sleep(Duration::from_secs(2)); // twice the restart delay: nothing may happen
    assert_eq!(
        vm.unit_property("faucet_worker.service", "ActiveState"),
        "failed"
    );
    // resumed: the agent brings it back
    assert_eq!(agent_cmd(vm, &["resume"]).status.code(), Some(0));
    wait_worker_back(vm, &pid, Duration::from_secs(5));
    assert_eq!(backoff_state(vm)["restart_count"], 1);

    // a manual restart honours the backoff, unless forced
    let out = agent_cmd(vm, &["restart"]);
    assert_eq!(out.status.code(), Some(1), "deferred: {out:?}");
    let pid = vm.unit_property("faucet_worker.service", "MainPID");
    let out = agent_cmd(vm, &["restart", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_ne!(vm.unit_property("faucet_worker.service", "MainPID"), pid);
    assert_eq!(agent_cmd(vm, &["reset-backoff"]).status.code(), Some(0));
    assert_eq!(backoff_state(vm)["restart_count"], 0);
}
