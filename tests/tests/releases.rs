//! Every supported release, as a user meets it: Debian 11 (the stand-in for Ubuntu 22.04: systemd
//! 247, polkit 0.105, glibc 2.31), the host's Debian 12, and Debian 13 (the stand-in for Ubuntu
//! 24.04 and later: systemd 257, polkit 126). On a fresh VM of each, `cryptoctl deploy --transport
//! ssh` installs the portable agent (`cargo xtask dist`) and the shipped units and ends healthy; the
//! agent runs as its own user and may restart the worker and nothing else (polkit's rule where
//! polkit reads it, the restart helper everywhere); a worker that crashes one second after each start
//! is restarted on the agent's schedule and never by systemd, and the schedule starts over once the
//! worker has run stable; `check`, `/health`, the gRPC socket and the journal check answer; a
//! deploy and a rollback over run-command and a rollback over ssh end healthy.
//!
//! What differs from production: the agent's delays are scaled down in its configuration
//! (`initial_delay` 2 s, `max_delay` 16 s, `stable_after` 15 s, so 2, 4, 8, 16, 16 s stand for 10,
//! 20, 40, 80, 160, 300 s), and the stand-in bot crashes on purpose. The units, the agent binary and
//! its code path are the shipped ones.

use std::time::Duration;

use cryptobot_tests::{
    Lab, Release, Vm,
    agent::{as_agent, manager_call_as_agent},
    bot::{FOOTPRINT, crash_after_one_second, deployed_commit, log_error},
    ctl::show,
    deploy::{DeployFleet, GROUP},
    dist_dir,
    http_server::HttpServer,
    wait_until,
};
use serde_json::Value;

const WORKER: &str = "faucet_worker.service";
const AGENT: &str = "cryptobot-agent.service";
const HELPER: &str = "cryptobot-worker-restart.service";

/// The scaled-down schedule (see the module doc).
const CONFIG: &str = "[daemon]\ninterval = \"1s\"\n\n[restart]\ninitial_delay = \"2s\"\nfactor = 2\n\
                      max_delay = \"16s\"\nstable_after = \"15s\"\n";
const SCHEDULE: [f64; 5] = [2.0, 4.0, 8.0, 16.0, 16.0];

#[test]
fn debian_11_bullseye() {
    on_release(Release::Bullseye);
}

#[test]
fn debian_12_bookworm_host() {
    on_release(Release::Host);
}

#[test]
fn debian_13_trixie() {
    on_release(Release::Trixie);
}

/// VMs that cannot be supported are refused before anything on them changes, naming what is
/// missing; the other VM is deployed as usual. One lacks python3-venv (its `ensurepip` is gone);
/// one stands in for a release with systemd 245 (Ubuntu 20.04): a `systemctl` shim first in PATH
/// that reports that version and passes everything else to the real one.
#[test]
fn vms_that_cannot_be_supported_are_refused_before_any_change() {
    let f = DeployFleet::start(Lab::builder(), &["Bot01", "Bot02", "Bot03"], CONFIG);
    let (no_venv, old_systemd, good) = (f.vm(1), f.vm(2), f.vm(3));
    no_venv.sh("rm -rf /usr/lib/python3*/ensurepip");
    old_systemd.write_file(
        "/usr/local/bin/systemctl",
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'systemd 245 (245.4-4ubuntu3)'; exit 0; fi\n\
         exec /usr/bin/systemctl \"$@\"\n",
    );
    old_systemd.sh("chmod 755 /usr/local/bin/systemctl");
    let before = [no_venv.sh(FOOTPRINT), old_systemd.sh(FOOTPRINT)];
    let out = f.deploy(true, &["--max-parallel", "3", "--gate-timeout", "60s"]);
    let said = show(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for line in [
        "Bot01 (BOTS-RG): FAILED: python3-venv is missing on the VM (apt-get install python3-venv)",
        "Bot02 (BOTS-RG): FAILED: systemd 245 is older than 247, the oldest supported",
        "Bot03 (BOTS-RG): ok",
    ] {
        assert!(said.contains(line), "{line} not in {said}");
    }
    assert_eq!(
        [no_venv.sh(FOOTPRINT), old_systemd.sh(FOOTPRINT)],
        before,
        "a refused VM was changed"
    );
    assert_eq!(deployed_commit(good), f.repo.good);
}

fn on_release(release: Release) {
    let f = DeployFleet::start(Lab::builder().release(release), &["Bot01"], CONFIG);
    let vm = f.vm(1);
    let over_ssh = [
        "--host",
        vm.ip.as_str(),
        "-n",
        "Bot01",
        "--gate-timeout",
        "90s",
    ];

    if release == Release::Bullseye {
        // The build machine's own agent needs a newer glibc than Debian 11's 2.31: refused before
        // anything on the VM changes, naming both versions.
        let out = f.deploy_with(true, &cryptobot_tests::agent_bin(), &over_ssh);
        let said = show(&out);
        assert_ne!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains("the agent binary needs glibc 2.")
                && said.contains("the VM has glibc 2.31"),
            "{said}"
        );
        assert_eq!(
            vm.sh(
                "ls -d /home/azureuser/Repositories /etc/systemd/system/faucet_worker.service \
                   /usr/local/bin/cryptobot-agent 2>/dev/null | wc -l"
            )
            .trim(),
            "0",
            "the refused deploy changed the VM"
        );
    }

    let out = f.deploy(true, &over_ssh);
    assert_eq!(out.status.code(), Some(0), "{release:?}: {}", show(&out));

    units_verify(vm, release);
    shipped_defaults(vm);
    runs_as_its_own_user(vm);
    front_ends_answer(vm, release);
    may_restart_only_the_worker(vm, release);
    restart_schedule(vm, release);

    // Over run-command too (the VM fetches the agent by URL): deploy v2, then roll back over ssh.
    let (_server, url) = HttpServer::start(&vm.switch_netns, &dist_dir());
    let by_run_command = ["-n", "Bot01", "--gate-timeout", "90s", "--ref", "v2"];
    let out = f.deploy(
        false,
        &[&by_run_command[..], &["--agent-url", &url]].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{release:?}: {}", show(&out));
    assert_eq!(deployed_commit(vm), f.repo.v2);
    let rollback = [
        "rollback",
        "-g",
        GROUP,
        "-n",
        "Bot01",
        "--gate-timeout",
        "90s",
    ];
    let out = f.cryptoctl(true).args(rollback).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{release:?}: {}", show(&out));
    assert_eq!(deployed_commit(vm), f.repo.good);
    // and a rollback over run-command, to an explicit commit
    let out = f
        .cryptoctl(false)
        .args(rollback)
        .args(["--commit", &f.repo.v2])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{release:?}: {}", show(&out));
    assert_eq!(deployed_commit(vm), f.repo.v2);
}

/// The one-shot check as the agent's user, `/health` over HTTP and the daemon's report over the
/// gRPC socket, all with this release's systemd, journalctl and glibc.
fn front_ends_answer(vm: &Vm, release: Release) {
    let out = as_agent(vm, &["/usr/local/bin/cryptobot-agent", "check", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{release:?}: check --json: {e}: {out:?}"));
    assert_eq!(report["status"], "HEALTHY", "{release:?}: {report:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["unit"]["active_state"], "active", "{report:#}");

    let health = vm.run(&["curl", "-sf", "http://127.0.0.1:8080/health"]);
    let health: Value = serde_json::from_slice(&health.stdout)
        .unwrap_or_else(|e| panic!("{release:?}: /health: {e}: {health:?}"));
    assert_eq!(health["status"], "healthy", "{health:#}");

    let status = || {
        let out = vm.run(&["/usr/local/bin/cryptobot-agent", "status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{release:?}: status --json: {e}: {out:?}"))
    };
    assert_eq!(status()["status"], "HEALTHY");

    // The journal check with this release's journalctl: the bot's [ERROR] line, at info priority.
    log_error(vm, "Claim failed: TimeoutError");
    wait_until(
        "the daemon to report the bot's error",
        Duration::from_secs(30),
        || status()["alerts"] == serde_json::json!(["Found 1 recent errors in logs"]),
    );
}

/// Every installed unit is clean for this release's `systemd-analyze verify` (no unknown
/// directive, nothing missing).
fn units_verify(vm: &Vm, release: Release) {
    for unit in [AGENT, WORKER, HELPER, "cryptobot-worker-restart.path"] {
        let out = vm.run(&[
            "systemd-analyze",
            "verify",
            &format!("/etc/systemd/system/{unit}"),
        ]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !said.contains(unit),
            "{release:?}: {unit}: {said}"
        );
    }
}

/// The restart settings as shipped: the installed worker unit leaves restarts to the agent, whose
/// effective defaults are 10 s doubling to 5 min, reset after 5 min of stable running.
fn shipped_defaults(vm: &Vm) {
    assert_eq!(vm.unit_property(WORKER, "Restart"), "no");
    let out = vm.run(&[
        "/usr/local/bin/cryptobot-agent",
        "config",
        "check",
        "/dev/null",
    ]);
    let effective = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{effective}");
    for line in [
        "initial_delay = \"10s\"",
        "factor = 2",
        "max_delay = \"5m\"",
        "stable_after = \"5m\"",
    ] {
        assert!(effective.contains(line), "{line} not in {effective}");
    }
}

fn runs_as_its_own_user(vm: &Vm) {
    let pid = vm.unit_property(AGENT, "MainPID");
    assert_eq!(
        vm.sh(&format!("ps -o user= -p {pid}")).trim(),
        "cryptobot-agent"
    );
}

/// Where polkit reads the JavaScript rule, systemd grants the worker's restart over D-Bus; polkit
/// 0.105 does not, and the helper is the way. Either way nothing else: no stop, no other unit, and
/// the helper does only its one thing whatever the agent's user writes in the request file (it
/// never reads it).
fn may_restart_only_the_worker(vm: &Vm, release: Release) {
    let granted = manager_call_as_agent(vm, "RestartUnit", WORKER);
    assert_eq!(
        granted.status.success(),
        release.polkit_reads_js_rules(),
        "{release:?}: {granted:?}"
    );
    assert!(
        !manager_call_as_agent(vm, "StopUnit", WORKER)
            .status
            .success()
    );
    assert!(
        !manager_call_as_agent(vm, "RestartUnit", "systemd-journald.service")
            .status
            .success()
    );
    assert!(
        !as_agent(vm, &["systemctl", "stop", WORKER])
            .status
            .success()
    );

    vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    let journald = vm.unit_property("systemd-journald.service", "MainPID");
    let passwd = vm.sh("sha256sum /etc/passwd");
    let request = "/var/lib/cryptobot-agent/restart-worker.request";
    for hostile in [
        "systemd-journald.service\n",
        "$(touch /pwned); touch /pwned2\n`touch /pwned3`\n",
    ] {
        let before = vm.unit_property(WORKER, "MainPID");
        let out = as_agent(
            vm,
            &[
                "sh",
                "-c",
                &format!("printf '%s' \"$1\" > {request}"),
                "sh",
                hostile,
            ],
        );
        assert!(out.status.success(), "{out:?}");
        wait_until(
            "the helper to restart the worker",
            Duration::from_secs(20),
            || {
                let pid = vm.unit_property(WORKER, "MainPID");
                pid != before && pid != "0"
            },
        );
    }
    assert_eq!(vm.unit_property(HELPER, "Result"), "success");
    assert_eq!(
        vm.unit_property("systemd-journald.service", "MainPID"),
        journald
    );
    assert_eq!(vm.sh("sha256sum /etc/passwd"), passwd);
    assert_eq!(
        vm.sh("ls /pwned /pwned2 /pwned3 2>/dev/null | wc -l")
            .trim(),
        "0"
    );
    vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
}

/// The worker's exits and starts, in seconds since the epoch, from its journal (read inside the VM
/// with the release's own journalctl).
fn exits_and_starts(vm: &Vm) -> (Vec<f64>, Vec<f64>) {
    let out = vm.run(&["journalctl", "-u", WORKER, "-o", "json", "--no-pager"]);
    let (mut exits, mut starts) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // systemd's own messages about the unit, not the bot's output
        if entry["_PID"].as_str() != Some("1") {
            continue;
        }
        let message = entry["MESSAGE"].as_str().unwrap_or_default();
        let at = entry["__REALTIME_TIMESTAMP"]
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .map(|us| us / 1e6)
            .expect("__REALTIME_TIMESTAMP");
        if message.contains("Main process exited") {
            exits.push(at);
        } else if message.starts_with("Started ") {
            starts.push(at);
        }
    }
    (exits, starts)
}

/// Delays from each exit after `since` to the next start.
fn delays(vm: &Vm, since: f64) -> Vec<f64> {
    let (exits, starts) = exits_and_starts(vm);
    exits
        .iter()
        .filter(|&&e| e > since)
        .filter_map(|&e| starts.iter().find(|&&s| s > e).map(|&s| s - e))
        .collect()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn assert_within_ten_percent(got: &[f64], want: &[f64], release: Release) {
    eprintln!("{release:?}: restart delays {got:.2?} (want {want:?})");
    assert_eq!(got.len(), want.len(), "{release:?}: delays {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= w * 0.1,
            "{release:?}: delays {got:?}, want {want:?} (each within 10 %)"
        );
    }
}

fn restart_schedule(vm: &Vm, release: Release) {
    // The agent's state from the privilege checks above starts over first.
    vm.systemctl(&format!("stop {AGENT}"));
    vm.sh("rm -f /var/lib/cryptobot-agent/restart_backoff.json");
    vm.systemctl(&format!("start {AGENT}"));
    vm.wait_active_state(AGENT, "active", Duration::from_secs(20));

    let since = now();
    crash_after_one_second(vm, true);
    vm.systemctl(&format!("restart {WORKER}"));
    wait_until(
        "five restarts of the crash loop",
        Duration::from_secs(120),
        || delays(vm, since).len() >= SCHEDULE.len(),
    );
    crash_after_one_second(vm, false);
    assert_within_ten_percent(&delays(vm, since)[..SCHEDULE.len()], &SCHEDULE, release);
    // systemd never restarted it on its own
    assert_eq!(vm.unit_property(WORKER, "NRestarts"), "0");
    if !release.polkit_reads_js_rules() {
        assert!(
            journal(vm, AGENT).contains("asked the restart helper"),
            "{release:?}: the agent did not use the helper"
        );
    }

    // After the next restart the worker runs stable; stable_after later the schedule starts over.
    wait_until("the backoff to reset", Duration::from_secs(60), || {
        let state = vm
            .read_file("/var/lib/cryptobot-agent/restart_backoff.json")
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or_default();
        state["restart_count"] == 0 && state["backoff_seconds"] == 2
    });
    let since = now();
    vm.sh(&format!("kill -9 {}", vm.unit_property(WORKER, "MainPID")));
    wait_until(
        "the restart after the crash",
        Duration::from_secs(30),
        || !delays(vm, since).is_empty(),
    );
    assert_within_ten_percent(&delays(vm, since)[..1], &[2.0], release);
}

/// A unit's journal, read inside the VM with the release's own journalctl.
fn journal(vm: &Vm, unit: &str) -> String {
    let out = vm.run(&["journalctl", "-u", unit, "-o", "cat", "--no-pager"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
