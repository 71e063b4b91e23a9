//! Alerting end to end: the real daemon in a lab VM notifies a webhook once when the worker stops,
//! stays quiet while nothing changes, and says RESOLVED once when it is back.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use cryptobot_tests::{Lab, agent::start_agent, wait_until};

const CONFIG: &str = "[daemon]\ninterval = \"1s\"\n[restart]\nenabled = false\n\
[[alerts.webhook]]\nkind = \"generic\"\nurl = \"http://127.0.0.1:9999/hook\"\n";

#[test]
fn one_critical_then_quiet_then_one_resolved() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    let mut receiver = vm
        .command("python3")
        .args(["/usr/local/lib/cryptobot-lab/webhook-receiver.py", "9999"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = receiver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    wait_until("the receiver to listen", Duration::from_secs(10), || {
        vm.run(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-d",
            "{}",
            "http://127.0.0.1:9999/ping",
        ])
        .status
        .success()
    });
    let _ping = rx.recv_timeout(Duration::from_secs(5));
    start_agent(vm, CONFIG, 5);
    let stopped = Instant::now();
    vm.systemctl("stop faucet_worker");
    let first = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("a notification within 2 s");
    eprintln!("notified after {:?}", stopped.elapsed());
    let text = first.to_string();
    assert!(text.contains("CRITICAL"), "{text}");
    assert!(text.contains("Service is not active"), "{text}");
    // several check cycles later: nothing more (no reminder before repeat_interval)
    assert!(
        rx.recv_timeout(Duration::from_secs(4)).is_err(),
        "a second notification"
    );
    vm.systemctl("start faucet_worker");
    let resolved = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a RESOLVED notification");
    assert!(resolved.to_string().contains("RESOLVED"), "{resolved}");
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "exactly one RESOLVED"
    );
    let _ = receiver.kill();
    let _ = receiver.wait();
}
