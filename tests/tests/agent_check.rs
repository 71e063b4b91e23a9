//! `cryptobot-agent check` inside lab VMs, against a real systemd, journald and D-Bus.

use std::{process::Output, time::Duration};

use cryptobot_tests::{Lab, Vm, agent_bin, json_of, wait_until};
use serde_json::Value;

const WORKER: &str = "faucet_worker.service";

fn check(vm: &Vm, extra: &[&str]) -> Output {
    check_with_env(vm, &[], extra)
}

fn check_with_env(vm: &Vm, env: &[(&str, &str)], extra: &[&str]) -> Output {
    vm.command_with_env(env, agent_bin())
        .arg("check")
        .args(extra)
        .output()
        .expect("run agent")
}

fn check_json(vm: &Vm, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = check(vm, &args);
    (out.status.code().expect("exit code"), json_of(&out))
}

fn alerts(v: &Value) -> Vec<String> {
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn ready(lab: &Lab) -> &Vm {
    let vm = lab.vm(1);
    vm.wait_active_state(WORKER, "active", Duration::from_secs(10));
    wait_until("a first heartbeat", Duration::from_secs(5), || {
        vm.read_file("/tmp/cryptobot_heartbeat").is_ok()
    });
    vm
}

#[test]
fn healthy_worker_is_healthy_with_the_original_keys() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    let out = check(vm, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let raw = String::from_utf8_lossy(&out.stdout);
    let v = json_of(&out);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        &keys[..10],
        [
            "timestamp",
            "status",
            "service_active",
            "service_running",
            "crash_count",
            "disk_usage_percent",
            "memory_usage_percent",
            "heartbeat_age_seconds",
            "alerts",
            "metrics"
        ]
    );
    assert!(
        raw.starts_with("{\n  \"timestamp\": "),
        "two-space indent like the original"
    );
    assert_eq!(v["status"], "HEALTHY");
    assert_eq!(v["service_active"], true);
    assert_eq!(v["service_running"], true);
    assert_eq!(v["crash_count"], 0);
    assert!(v["heartbeat_age_seconds"].as_i64().unwrap() <= 2);
    assert_eq!(alerts(&v), Vec::<String>::new());
    assert_eq!(
        v["unit"]["main_pid"].as_u64().unwrap(),
        vm.unit_property(WORKER, "MainPID").parse::<u64>().unwrap()
    );
    let ts = v["timestamp"].as_str().unwrap();
    assert!(chrono_like_rfc3339(ts), "{ts}");

    // text mode keeps the original layout
    let out = check(vm, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Overall Status: HEALTHY\nService Active: True\nService Running: True\n"),
        "{text}"
    );
    assert!(text.contains("✅ No alerts"), "{text}");
    // the legacy flags still work
    let out = vm
        .command(agent_bin())
        .args(["--check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["status"], "HEALTHY");
}

fn chrono_like_rfc3339(ts: &str) -> bool {
    // 2026-12-01T02:39:30.329107+00:00
    ts.len() == 32
        && &ts[10..11] == "T"
        && (ts[26..27] == *"+" || ts[26..27] == *"-")
        && &ts[29..30] == ":"
}

#[test]
fn stopped_worker_is_critical() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    vm.systemctl("stop faucet_worker");
    let (code, v) = check_json(vm, &[]);
    assert_eq!(code, 2);
    assert_eq!(v["status"], "CRITICAL");
    assert_eq!(v["service_active"], false);
    assert_eq!(alerts(&v)[0], "Service is not active");
    assert_eq!(v["unit"]["active_state"], "inactive");
}

#[test]
fn repeated_sigkill_under_restart_always_is_a_crash_loop() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    for n in 1..=6 {
        let pid = vm.unit_property(WORKER, "MainPID");
        vm.sh(&format!("kill -9 {pid}"));
        wait_until(&format!("restart {n}"), Duration::from_secs(10), || {
            vm.unit_property(WORKER, "NRestarts") == n.to_string()
                && vm.unit_property(WORKER, "ActiveState") == "active"
                && vm.unit_property(WORKER, "MainPID") != pid
        });
    }
    let (code, v) = check_json(vm, &[]);
    assert_eq!(v["crash_count"], 6);
    assert!(
        alerts(&v).contains(&"Service has restarted 6 times - possible crash loop".to_owned()),
        "{:?}",
        alerts(&v)
    );
    assert_eq!(v["status"], "WARNING");
    assert_eq!(code, 1);
}

#[test]
fn hung_worker_has_a_stale_heartbeat() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    vm.write_file("/run/fake-worker/hang", "");
    wait_until("the worker to stop writing", Duration::from_secs(5), || {
        vm.read_file("/run/fake-worker/hanging").is_ok()
    });
    // The worker hung 412 s ago: its last heartbeat (content and mtime) is that old.
    vm.sh(
        "t=$(( $(date +%s) - 412 )); printf '%s.250000\\n3 jobs\\n1 running\\nAccounts: None\\n' $t > /tmp/cryptobot_heartbeat; touch -d @$t /tmp/cryptobot_heartbeat",
    );
    let (code, v) = check_json(vm, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["status"], "WARNING");
    let age = v["heartbeat_age_seconds"].as_i64().unwrap();
    assert!((411..=413).contains(&age), "{age}");
    assert_eq!(alerts(&v), vec![format!("Heartbeat is stale ({age}s old)")]);
    assert_eq!(v["heartbeat"]["source"], "content");
}

#[test]
fn hang_is_noticed_as_time_passes() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    vm.write_file(
        "/etc/cryptobot/agent.toml",
        "[heartbeat]\nstale_after = \"2s\"\n",
    );
    let cfg = ["--config", "/etc/cryptobot/agent.toml"];
    assert_eq!(check_json(vm, &cfg).1["status"], "HEALTHY");
    vm.write_file("/run/fake-worker/hang", "");
    wait_until(
        "the check to see a stale heartbeat",
        Duration::from_secs(15),
        || {
            let (_, v) = check_json(vm, &cfg);
            alerts(&v)
                .iter()
                .any(|a| a.starts_with("Heartbeat is stale ("))
        },
    );
    // and it recovers when the worker writes again
    std::fs::remove_file(vm.host_path("/run/fake-worker/hang")).unwrap();
    wait_until("a fresh heartbeat", Duration::from_secs(10), || {
        check_json(vm, &cfg).1["status"] == "HEALTHY"
    });
}

#[test]
fn journal_errors_are_reported_once() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    assert_eq!(check_json(vm, &[]).0, 0);
    vm.write_file("/run/fake-worker/errors", "2");
    wait_until(
        "the worker to log its errors",
        Duration::from_secs(5),
        || vm.read_file("/run/fake-worker/errors").is_err(),
    );
    wait_until("journald to store them", Duration::from_secs(5), || {
        vm.journal(WORKER).matches("simulated error").count() == 2
    });
    let (code, v) = check_json(vm, &[]);
    assert_eq!(alerts(&v), vec!["Found 2 recent errors in logs"]);
    assert_eq!(code, 1);
    let last = v["journal"]["recent"][1]["message"].as_str().unwrap();
    assert!(
        last.ends_with(" [ERROR] faucets.firefaucet - simulated error 2 of 2"),
        "{last}"
    );
    // the next check has nothing new to say about them
    let (code, v) = check_json(vm, &[]);
    assert_eq!((code, alerts(&v)), (0, vec![]));
}

/// The bot's errors as it writes them: everything on stdout at priority info, its `[ERROR]` and
/// `[CRITICAL]` levels, and an uncaught exception's traceback (one error, not four).
#[test]
fn the_bots_error_lines_and_a_traceback_are_errors_once() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    assert_eq!(check_json(vm, &[]).0, 0);
    vm.write_file(
        "/run/fake-worker/say",
        "2026-01-24 10:16:40,002 [ERROR] faucets.firefaucet - Claim failed: TimeoutError\n\
         2026-01-24 10:16:40,950 [INFO] core.orchestrator - recovered from error, retrying\n\
         2026-01-24 10:16:41,002 [ERROR] faucets.coinpayu - Claim failed: captcha\n\
         2026-01-24 10:17:00,950 [CRITICAL] core.wallet_manager - Wallet RPC unreachable\n\
         Traceback (most recent call last):\n\
         \x20 File \"/home/azureuser/Repositories/cryptobot/main.py\", line 12, in <module>\n\
         \x20   from typing import Dict\n\
         NameError: name 'Dict' is not defined\n",
    );
    wait_until(
        "the worker to print its lines",
        Duration::from_secs(5),
        || vm.read_file("/run/fake-worker/say").is_err(),
    );
    wait_until("journald to store them", Duration::from_secs(5), || {
        vm.journal(WORKER)
            .contains("NameError: name 'Dict' is not defined")
    });
    let out = vm.run(&[
        "journalctl",
        "-u",
        WORKER,
        "-p",
        "err",
        "-o",
        "cat",
        "--no-pager",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Wallet RPC"),
        "the stand-in must log at info, as the bot does"
    );
    let (code, v) = check_json(vm, &[]);
    assert_eq!(alerts(&v), vec!["Found 4 recent errors in logs"]);
    assert_eq!(code, 1);
    let (code, v) = check_json(vm, &[]);
    assert_eq!((code, alerts(&v)), (0, vec![]));
}

#[test]
fn errors_of_an_earlier_invocation_are_not_recent() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    vm.write_file("/run/fake-worker/errors", "3");
    wait_until("the errors", Duration::from_secs(10), || {
        vm.journal(WORKER).matches("simulated error").count() == 3
    });
    // a manual restart starts a new invocation: the first check after it does not see the old errors
    vm.systemctl("restart faucet_worker");
    vm.wait_active_state(WORKER, "active", Duration::from_secs(10));
    let (_, v) = check_json(vm, &[]);
    assert!(
        !alerts(&v).iter().any(|a| a.contains("recent errors")),
        "{:?}",
        alerts(&v)
    );
}

#[test]
fn full_disk_is_critical() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    vm.sh("mkdir -p /mnt/small && mount -t tmpfs -o size=1m tmpfs /mnt/small && dd if=/dev/zero of=/mnt/small/fill bs=1k count=960 2>/dev/null");
    vm.write_file(
        "/etc/cryptobot/agent.toml",
        "[disk]\nmounts = [\"/mnt/small\"]\n",
    );
    let (code, v) = check_json(vm, &["--config", "/etc/cryptobot/agent.toml"]);
    assert_eq!(code, 2);
    let pct = v["disk_usage_percent"].as_u64().unwrap();
    assert!(pct > 90, "{pct}");
    assert_eq!(
        alerts(&v),
        vec![format!("Disk usage critical: {pct}% on /mnt/small")]
    );
}

#[test]
fn exhausted_inodes_are_critical_while_space_is_left() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    // 64 inodes (the root directory takes one), 16 MiB of space: 62 empty files use 98 % of the
    // inodes and no space.
    vm.sh(
        "mkdir -p /mnt/few && mount -t tmpfs -o size=16m,nr_inodes=64 tmpfs /mnt/few \
         && for i in $(seq 1 62); do : > /mnt/few/f$i; done",
    );
    vm.write_file(
        "/etc/cryptobot/agent.toml",
        "[disk]\nmounts = [\"/mnt/few\"]\n",
    );
    let (code, v) = check_json(vm, &["--config", "/etc/cryptobot/agent.toml"]);
    assert_eq!(code, 2, "{v}");
    assert!(v["disk_usage_percent"].as_u64().unwrap() < 80, "{v}");
    let inodes = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "inodes:/mnt/few")
        .cloned()
        .unwrap_or_else(|| panic!("no inode check in {v}"));
    let pct: u64 = inodes["value"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(pct > 90, "{inodes}");
    assert_eq!(
        alerts(&v),
        vec![format!("Inode usage critical: {pct}% on /mnt/few")]
    );
    // freed again: healthy
    vm.sh("rm -f /mnt/few/f*");
    let (code, v) = check_json(vm, &["--config", "/etc/cryptobot/agent.toml"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn unreachable_dbus_is_unknown_not_critical() {
    let lab = Lab::start(1);
    let vm = ready(&lab);
    let out = check_with_env(
        vm,
        &[("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/nothing/here")],
        &["--json"],
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["status"], "UNKNOWN");
    assert_eq!(v["service_active"], Value::Null);
    let a = alerts(&v);
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(
        a[0].starts_with(
            "Service state unknown: cannot connect to the system bus at unix:path=/run/nothing/here"
        ),
        "{a:?}"
    );
}
