//! The daemon in a lab VM when what it depends on fails or is hostile: journald stopped and its
//! files gone, every alert sink a black hole, planted secrets that must never show, and local
//! users without the socket's group.
//!
//! The black-hole test runs for 10 minutes (`CRYPTOBOT_BLACKHOLE_SECS` shortens it for local
//! runs); `.config/nextest.toml` starts it first so that it overlaps the rest of the suite.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use cryptobot_tests::{
    Lab, Vm,
    agent::{AGENT_CONFIG, AGENT_UNIT, start_agent},
    agent_bin, wait_until,
};

/// `curl` inside the VM on loopback: status code and body.
fn curl(vm: &Vm, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut args = vec!["curl", "-s", "-m", "5", "-w", "\n%{http_code}"];
    let header;
    if let Some(a) = accept {
        header = format!("Accept: {a}");
        args.extend(["-H", &header]);
    }
    let url = format!("http://127.0.0.1:8080{path}");
    args.push(&url);
    let out = vm.run(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The daemon's report (`/metrics` as JSON).
fn metrics(vm: &Vm) -> serde_json::Value {
    serde_json::from_str(&curl(vm, "/metrics", None).1).unwrap_or(serde_json::Value::Null)
}

/// Each check's status, by check name, lower case.
fn check_statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_owned(),
                        c["status"].as_str().unwrap_or("").to_lowercase(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn status_of(report: &serde_json::Value, name: &str) -> Option<String> {
    check_statuses(report)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

/// VmRSS of the agent's main process in KiB.
fn agent_rss_kib(vm: &Vm) -> u64 {
    agent_memory_kib(vm, "VmRSS")
}

/// A `/proc/PID/status` field of the agent, in KiB.
fn agent_memory_kib(vm: &Vm, field: &str) -> u64 {
    let pid = vm.unit_property(AGENT_UNIT, "MainPID");
    let status = vm.sh(&format!("cat /proc/{pid}/status"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} of the agent"))
}

#[test]
fn without_journald_only_the_journal_check_is_unknown() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, "[daemon]\ninterval = \"1s\"\n", 10);
    wait_until("a first report", Duration::from_secs(10), || {
        status_of(&metrics(vm), "journal").is_some_and(|s| s != "unknown")
    });
    let before = check_statuses(&metrics(vm));

    vm.sh(
        "systemctl stop systemd-journald.socket systemd-journald-dev-log.socket \
         systemd-journald-audit.socket systemd-journald.service 2>/dev/null || \
         systemctl stop systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service; \
         for d in /run/log/journal /var/log/journal; do [ -d $d ] && mv $d $d.away; done; true",
    );
    let stopped = Instant::now();
    wait_until(
        "the journal check to be UNKNOWN",
        Duration::from_secs(15),
        || status_of(&metrics(vm), "journal").as_deref() == Some("unknown"),
    );
    eprintln!(
        "journal UNKNOWN {:?} after journald stopped",
        stopped.elapsed()
    );
    let report = metrics(vm);
    for (name, status) in &before {
        if name == "journal" {
            continue;
        }
        assert_eq!(
            status_of(&report, name).as_ref(),
            Some(status),
            "check {name} changed while only journald was stopped: {report}"
        );
    }
    let alerts = report["alerts"].to_string();
    assert!(alerts.contains("Journal errors unknown"), "{alerts}");
    // The agent keeps serving and was never restarted.
    assert!(matches!(curl(vm, "/health", None).0, 200 | 503));
    assert_eq!(
        vm.unit_property(AGENT_UNIT, "NRestarts"),
        "0",
        "the agent was restarted: {}",
        vm.systemctl(&format!(
            "show -p Result -p ExecMainCode -p ExecMainStatus -p StatusText {AGENT_UNIT}"
        ))
    );
    assert_eq!(vm.unit_property(AGENT_UNIT, "ActiveState"), "active");
}

/// A TCP listener in the VM's network namespace on 127.0.0.1:`port` that accepts every
/// connection and never answers or closes.
fn blackhole(vm: &Vm, port: u16) -> Child {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('127.0.0.1',{port}))\ns.listen(1024)\nprint('ready',flush=True)\nheld=[]\n\
         while len(held)<100000:\n    held.append(s.accept()[0])\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &vm.netns, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Queue sizes of the black-hole test: small, so that every queue is full after a minute or two
/// and the rest of the run shows whether memory still grows once nothing more can be kept.
const HOLE_QUEUE: u64 = 40;
const HOLE_TELEMETRY_QUEUE: u64 = 150;

/// The queue size the black-hole test configures for the sink `name`.
fn queue_size(name: &str) -> u64 {
    if name == "appinsights" {
        HOLE_TELEMETRY_QUEUE
    } else {
        HOLE_QUEUE
    }
}

/// `(name, pending, dropped)` of every alert sink in a `/metrics` report.
fn sink_queues(report: &serde_json::Value) -> Vec<(String, u64, u64)> {
    report["daemon"]["sinks"]
        .as_array()
        .map(|sinks| {
            sinks
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("?").to_owned(),
                        s["pending"].as_u64().unwrap_or(0),
                        s["dropped"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn black_holed_alert_sinks_never_slow_the_checks() {
    let duration = Duration::from_secs(
        std::env::var("CRYPTOBOT_BLACKHOLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    let _hole = Killed(blackhole(vm, 9099));
    start_agent(
        vm,
        &format!(
            "[daemon]\ninterval = \"1s\"\n[restart]\nenabled = false\n\
             [alerts]\nrepeat_interval = \"1s\"\nqueue_size = {HOLE_QUEUE}\n\
             [[alerts.webhook]]\nkind = \"generic\"\nurl = \"http://127.0.0.1:9099/hook\"\ntimeout = \"30s\"\n\
             [alerts.email]\nto = [\"ops@example.com\"]\nfrom = \"agent@example.com\"\nhost = \"127.0.0.1\"\n\
             port = 9099\ntls = \"none\"\ntimeout = \"30s\"\n\
             [alerts.appinsights]\nconnection_string = \"InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=http://127.0.0.1:9099/\"\n\
             interval = \"1s\"\ntimeout = \"30s\"\nqueue_size = {HOLE_TELEMETRY_QUEUE}\n"
        ),
        10,
    );
    // Not healthy, so every sink has something to send: a reminder per second to each
    // notification sink and a few telemetry items per check.
    vm.systemctl("stop faucet_worker.service");
    wait_until("CRITICAL", Duration::from_secs(10), || {
        curl(vm, "/health", None).0 == 503
    });
    let started = Instant::now();
    let mut last_stamp = String::new();
    let mut last_change = Instant::now();
    let mut worst_gap = Duration::ZERO;
    let mut snapshots = 0u32;
    // Heap (RssAnon, not VmRSS: the debug binary's pages come in as new code runs) when every
    // queue was first seen full, and the largest after that.
    let mut full: Option<(Duration, u64)> = None;
    let mut largest_after_full = 0u64;
    let mut last_report = serde_json::Value::Null;
    while started.elapsed() < duration {
        let report = metrics(vm);
        let stamp = report["timestamp"].as_str().unwrap_or("").to_owned();
        if !stamp.is_empty() && stamp != last_stamp {
            worst_gap = worst_gap.max(last_change.elapsed());
            last_change = Instant::now();
            last_stamp = stamp;
            snapshots += 1;
        }
        let queues = sink_queues(&report);
        let all_full = queues.len() == 3
            && queues
                .iter()
                .all(|(name, pending, _)| *pending == queue_size(name));
        if all_full || full.is_some() {
            let heap = agent_memory_kib(vm, "RssAnon");
            match full {
                None => full = Some((started.elapsed(), heap)),
                Some(_) => largest_after_full = largest_after_full.max(heap),
            }
        }
        if !report.is_null() {
            last_report = report;
        }
        // Sampling, not synchronisation: the test measures how often snapshots appear.
        std::thread::sleep(Duration::from_millis(200));
    }
    let queues = sink_queues(&last_report);
    eprintln!(
        "{snapshots} snapshots in {duration:?}, worst gap {worst_gap:?}; queues full at {full:?} \
         (elapsed, RssAnon KiB), largest RssAnon after that {largest_after_full} KiB, VmRSS now {} KiB; \
         sinks {queues:?}",
        agent_rss_kib(vm)
    );
    assert!(
        worst_gap < Duration::from_millis(2_500),
        "a snapshot was {worst_gap:?} late with every sink black-holed"
    );
    assert!(u64::from(snapshots) >= duration.as_secs() * 8 / 10);
    // The queues are bounded: full, dropping the oldest, nothing delivered.
    assert_eq!(queues.len(), 3, "{last_report}");
    for (name, pending, dropped) in &queues {
        assert!(*dropped > 0, "{name} dropped nothing: {queues:?}");
        assert!(*pending <= queue_size(name), "{name}: {queues:?}");
    }
    // Memory is bounded: once nothing more can be queued, the heap stays where it was.
    let (full_at, heap_when_full) = full.expect("every queue filled up");
    assert!(
        full_at < duration / 2,
        "the queues took {full_at:?} to fill; too late to judge the rest of the run"
    );
    assert!(
        largest_after_full < heap_when_full + 2 * 1024,
        "the agent's heap grew from {heap_when_full} KiB (queues full after {full_at:?}) to \
         {largest_after_full} KiB"
    );
    assert_eq!(vm.unit_property(AGENT_UNIT, "NRestarts"), "0");
}

const HOOK_SECRET: &str = "PLANTEDhookSECRETa1b2c3";
const SMTP_SECRET: &str = "PLANTEDsmtpSECRETd4e5f6";
const IKEY_SECRET: &str = "5ec7e701-0bad-4bad-8bad-5ec7e70100aa";
const HTTP_TOKEN: &str = "PLANTEDhttpTOKENg7h8i9j0";
const GRPC_TOKEN: &str = "PLANTEDgrpcTOKENk1l2m3n4";

/// Fails when any planted secret is in `text`.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        HOOK_SECRET,
        SMTP_SECRET,
        IKEY_SECRET,
        HTTP_TOKEN,
        GRPC_TOKEN,
    ] {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret}:\n{text}"
        );
    }
}

#[test]
fn planted_secrets_never_show_in_logs_outputs_or_errors() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    let config = format!(
        "[daemon]\ninterval = \"1s\"\n[restart]\nenabled = false\n\
         [http]\ntoken = \"{HTTP_TOKEN}\"\n\
         [grpc]\ntcp_listen = \"127.0.0.1:50051\"\ntoken = \"{GRPC_TOKEN}\"\n\
         [[alerts.webhook]]\nkind = \"generic\"\nurl = \"http://127.0.0.1:9/hook/{HOOK_SECRET}\"\ntimeout = \"2s\"\n\
         [alerts.email]\nto = [\"ops@example.com\"]\nfrom = \"agent@example.com\"\nhost = \"127.0.0.1\"\n\
         port = 9\ntls = \"none\"\nuser = \"agent\"\ntimeout = \"2s\"\n\
         [alerts.appinsights]\nconnection_string = \"InstrumentationKey={IKEY_SECRET};IngestionEndpoint=http://127.0.0.1:9/\"\n\
         interval = \"1s\"\ntimeout = \"2s\"\n"
    );
    // The SMTP password comes from the environment file, as on a real VM.
    vm.write_file(
        "/etc/cryptobot/agent.env",
        format!("SMTP_PASSWORD={SMTP_SECRET}\n"),
    );
    vm.write_file(
        "/etc/systemd/system/cryptobot-agent.service.d/env.conf",
        "[Service]\nEnvironmentFile=/etc/cryptobot/agent.env\n",
    );
    start_agent(vm, &config, 10);
    // Alerts that fail (nothing listens on port 9) and a crash.
    vm.systemctl("stop faucet_worker.service");
    wait_until(
        "every sink to report an error",
        Duration::from_secs(30),
        || {
            let report = metrics(vm);
            let sinks = report["daemon"]["sinks"].to_string();
            curl(vm, "/health", None).0 == 503
                && sinks.matches("last_error").count() >= 3
                && !sinks.contains("\"last_error\":null")
        },
    );
    let bin = agent_bin().display().to_string();
    let env_file = [("SMTP_PASSWORD", SMTP_SECRET)];
    let run_with_env = |args: &[&str]| {
        let out = vm
            .command_with_env(&env_file, &bin)
            .args(args)
            .output()
            .expect("run the agent");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let outputs = [
        ("status --json", run_with_env(&["status", "--json"])),
        ("status", run_with_env(&["status"])),
        (
            "config check",
            run_with_env(&["--config", AGENT_CONFIG, "config", "check"]),
        ),
        (
            "alert test",
            run_with_env(&["--config", AGENT_CONFIG, "alert", "test"]),
        ),
        (
            "check --alert",
            run_with_env(&["--config", AGENT_CONFIG, "check", "--json", "--alert"]),
        ),
        ("/metrics", curl(vm, "/metrics", None).1),
        (
            "/metrics (Prometheus)",
            curl(vm, "/metrics", Some("text/plain;version=0.0.4")).1,
        ),
        ("/", curl(vm, "/", None).1),
        ("/health", curl(vm, "/health", None).1),
    ];
    for (what, text) in &outputs {
        assert!(!text.trim().is_empty(), "{what} printed nothing");
        assert_no_secret(what, text);
    }
    // A bad configuration's error names the key, not the value.
    vm.write_file(
        "/etc/cryptobot/bad.toml",
        format!("[[alerts.webhook]]\nkind = \"slack\"\nurl = \"ftp://x/{HOOK_SECRET}\"\n"),
    );
    let bad = run_with_env(&["config", "check", "/etc/cryptobot/bad.toml"]);
    assert!(bad.contains("alerts.webhook"), "{bad}");
    assert_no_secret("config check of a bad file", &bad);
    // Everything the agent logged, at every level.
    let journal = vm.journal(AGENT_UNIT);
    assert!(
        journal.contains("127.0.0.1"),
        "the sink errors are logged: {journal}"
    );
    assert_no_secret("the journal", &journal);
}

#[test]
fn local_users_outside_the_socket_group_are_refused() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    vm.sh(
        "groupadd -f cbsock && (id mallory >/dev/null 2>&1 || useradd -M -s /bin/sh mallory) \
         && (id alice >/dev/null 2>&1 || useradd -M -s /bin/sh -G cbsock alice)",
    );
    start_agent(
        vm,
        "[daemon]\ninterval = \"1s\"\n[restart]\nenabled = false\n[grpc]\nsocket_group = \"cbsock\"\n",
        10,
    );
    let socket = "/run/cryptobot-agent/agent.sock";
    let mode = vm.sh(&format!("stat -c '%a %U %G' {socket}"));
    assert_eq!(mode.trim(), "660 root cbsock");
    let bin = agent_bin().display().to_string();
    let as_user = |user: &str, args: &str| {
        vm.run(&[
            "runuser",
            "-u",
            user,
            "--",
            "sh",
            "-c",
            &format!("{bin} {args}"),
        ])
    };
    // Someone in the group may use it ...
    let ok = as_user("alice", "status --json");
    assert!(
        matches!(ok.status.code(), Some(0..=2)),
        "alice: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // ... anyone else is refused by the socket's permissions, for reading and for restarting.
    let pid = vm.unit_property("faucet_worker.service", "MainPID");
    for args in ["status", "restart --force", "pause", "reset-backoff"] {
        let out = as_user("mallory", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "mallory {args}: {stderr}");
        assert!(
            stderr.to_lowercase().contains("permission denied"),
            "{stderr}"
        );
    }
    assert_eq!(vm.unit_property("faucet_worker.service", "MainPID"), pid);
}
