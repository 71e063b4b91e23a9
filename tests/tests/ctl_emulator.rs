//! cryptoctl against the Azure emulator alone (synthetic VMs, no lab): paging, the JSON schema,
//! throttling and server errors, conflicts, credentials and usage errors, a guest agent that is not
//! Ready, the Windows run-command result, the progress bar on a terminal, and who a deploy says the
//! credentials are.

use cryptobot_tests::{
    azure_emulator::{
        AzureEmulator, CLIENT_ID, EmulatedVm, Faults, OBJECT_ID, SUBSCRIPTION, SUBSCRIPTION_NAME,
        TENANT,
    },
    ctl::{cryptoctl, run, show},
    pty::Pty,
};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

#[test]
fn vms_follows_next_link_across_pages() {
    let mut b = AzureEmulator::builder().page_size(2);
    for i in 1..=5 {
        b = b.vm(EmulatedVm::synthetic(
            &format!("node{i:02}"),
            if i % 2 == 0 { "RG-B" } else { "RG-A" },
        ));
    }
    let emu = b
        .vm(EmulatedVm::synthetic("off01", "RG-A").power("deallocated"))
        .start();
    // Resource Manager's lists, not the default Resource Graph query
    let out = run(
        &emu,
        &["vms", "--inventory", "arm", "--all", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json(&out);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vm"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["node01", "node03", "node05", "off01", "node02", "node04"]
    );
    assert_eq!(v[3]["power_state"], "deallocated");
    assert_eq!(v[0]["size"], "Standard_B2s");
    let list_calls = emu
        .seen()
        .iter()
        .filter(|s| s.uri.starts_with("/subscriptions/") && s.uri.contains("virtualMachines?"))
        .count();
    assert_eq!(list_calls, 3, "6 VMs in pages of 2");
    // per resource group, also paged
    let out = run(&emu, &["vms", "--inventory", "arm", "-g", "RG-A"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("node05") && !text.contains("node02"),
        "{text}"
    );
    assert!(text.contains("deallocated"), "{text}");
}

/// Replaces what changes from run to run: durations and timestamps.
fn templated(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "duration_ms" {
                    *x = Value::String("<ms>".into());
                } else {
                    templated(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(templated),
        Value::String(s) if looks_like_timestamp(s) => *s = "<timestamp>".into(),
        _ => {}
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':'
}

#[test]
fn health_json_matches_the_golden_schema() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("DevNode01", "APPSERVRG").tag("role", "bot"))
        .vm(EmulatedVm::synthetic("DevNode02", "APPSERVRG").power("deallocated"))
        .vm(EmulatedVm::synthetic("bot-7", "BOTS"))
        .start();
    let out = run(
        &emu,
        &[
            "health",
            "-g",
            "APPSERVRG",
            "-g",
            "BOTS",
            "-n",
            "DevNode01",
            "-n",
            "DevNode02",
            "-n",
            "Gone01",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let mut v = json(&out);
    templated(&mut v);
    let golden_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/health.json");
    let actual = serde_json::to_string_pretty(&v).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &actual).unwrap();
    }
    let golden =
        std::fs::read_to_string(&golden_path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        actual, golden,
        "the JSON schema changed: update the README and the golden file"
    );
}

#[test]
fn throttling_server_errors_and_conflicts_are_retried() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("busy01", "RG"))
        .vm(EmulatedVm::synthetic("calm01", "RG"))
        .faults(Faults {
            throttle_next: 4,
            throttle_retry_after: 1,
            ..Faults::default()
        })
        .start();
    emu.set_faults(|f| {
        f.conflict_next.insert("busy01".into(), 2);
        f.conflict_retry_after = 1;
    });
    let started = std::time::Instant::now();
    let out = run(&emu, &["health", "-g", "RG", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json(&out);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "HEALTHY"),
        "{v:#}"
    );
    let seen = emu.seen();
    assert_eq!(seen.iter().filter(|s| s.status == 429).count(), 4);
    assert_eq!(seen.iter().filter(|s| s.status == 409).count(), 2);
    // Retry-After: 1 was honoured for each 429 before the list succeeded
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // 500s: retried with backoff
    emu.set_faults(|f| f.fail_next = 3);
    let out = run(&emu, &["health", "-n", "calm01"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(emu.seen().iter().filter(|s| s.status == 500).count(), 3);

    // a storm that does not end: UNKNOWN (or a listing error), never a hang or a crash
    emu.set_faults(|f| {
        f.throttle_next = 1000;
        f.throttle_retry_after = 0;
    });
    let out = run(&emu, &["health", "-n", "calm01", "--output", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let v = json(&out);
    assert!(v[0]["reason"].as_str().unwrap().contains("429"), "{v:#}");
}

#[test]
fn a_low_request_budget_lowers_concurrency() {
    let mut b = AzureEmulator::builder().budget(30);
    for i in 0..6 {
        b = b.vm(EmulatedVm::synthetic(&format!("vm{i}"), "RG"));
    }
    let emu = b.start();
    let out = run(&emu, &["health", "--all", "--concurrency", "8"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: Azure's request budget is low (Microsoft.Compute/LowCostGet3Min: 29 left): handling at most 7 VMs at once"),
        "{stderr}"
    );
}

#[test]
fn credentials_and_usage_errors() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("vm1", "RG"))
        .start();
    // a wrong secret: the token endpoint's error is shown, exit 70
    let out = cryptobot_tests::ctl::cryptoctl(&emu)
        .env("AZURE_CLIENT_SECRET", "wrong")
        .args(["health", "--all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment failed") && stderr.contains("7000215"),
        "{}",
        show(&out)
    );
    assert!(
        emu.seen()
            .iter()
            .all(|s| s.uri.ends_with("/oauth2/v2.0/token")),
        "nothing but the token endpoint was asked"
    );

    // nothing selected, hostile names, --host with several VMs: usage errors before any request
    let before = emu.seen().len();
    for args in [
        vec!["health"],
        vec!["health", "-g", "x$(touch /tmp/pwned)"],
        vec!["health", "-n", "x$(touch /tmp/pwned)"],
        vec!["logs", "-n", "vm1", "--since", "$(id)"],
        vec!["health", "--all", "--agent-path", "/x;touch /tmp/pwned"],
        vec![
            "health",
            "--all",
            "--ssh-user",
            "root;id",
            "--transport",
            "ssh",
        ],
        vec![
            "health",
            "--all",
            "--host",
            "-oProxyCommand=id",
            "--transport",
            "ssh",
        ],
    ] {
        let out = run(&emu, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
    }
    assert_eq!(emu.seen().len(), before, "usage errors contact nothing");
    let out = run(&emu, &["--arm-endpoint", "http://127.0.0.1:1", "vms"]);
    assert_eq!(out.status.code(), Some(70), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https"),
        "{}",
        show(&out)
    );
}

#[test]
fn ctrl_c_prints_the_results_that_finished() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("fast01", "RG-A"))
        .vm(EmulatedVm::synthetic("fast02", "RG-A"))
        .vm(EmulatedVm::hanging("stuck01", "RG-A"))
        .start();
    let child = cryptobot_tests::ctl::cryptoctl(&emu)
        .args([
            "--poll-interval",
            "100ms",
            "health",
            "-g",
            "RG-A",
            "--output",
            "json",
            "--timeout",
            "5m",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // both fast VMs have answered their final result, the stuck one is still running
    cryptobot_tests::wait_until(
        "two results fetched",
        std::time::Duration::from_secs(30),
        || {
            let seen = emu.seen();
            let results = seen
                .iter()
                .filter(|s| s.method == "GET" && s.uri.contains("monitor=true") && s.status == 200)
                .count();
            let stuck = seen
                .iter()
                .any(|s| s.method == "POST" && s.uri.contains("/stuck01/runCommand"));
            results >= 2 && stuck
        },
    );
    let out = cryptobot_tests::ctl::interrupt(child);
    let v = json(&out);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vm"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast01", "fast02"], "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted: 2 of 3 VMs finished"),
        "{}",
        show(&out)
    );
}

#[test]
fn retry_after_of_a_running_command_is_honoured() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("node01", "RG-A"))
        .start();
    emu.set_faults(|f| {
        f.poll_retry_after = 2;
        f.synthetic_run_time = std::time::Duration::from_secs(1);
    });
    let out = run(
        &emu,
        &[
            "--poll-interval",
            "100ms",
            "health",
            "-g",
            "RG-A",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // every 100 ms for a second would be about ten polls; Retry-After: 2 makes it one
    let polls = emu
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.uri.contains("/operations/"))
        .count();
    assert!(polls <= 2, "{polls} polls despite Retry-After");
}

#[test]
fn a_guest_agent_that_is_not_ready_is_unknown_without_a_run_command() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("ready01", "RG"))
        .vm(EmulatedVm::synthetic("noagent01", "RG").guest_agent_ready(false))
        .vm(EmulatedVm::synthetic("ready02", "RG"))
        .vm(EmulatedVm::synthetic("off01", "RG-OFF").power("deallocated"))
        .start();
    let out = run(&emu, &["health", "-g", "RG", "--output", "json"]);
    // UNKNOWN is the worst status here
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let v = json(&out);
    let row = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["vm"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {v:#}"))
            .clone()
    };
    let stuck = row("noagent01");
    assert_eq!(stuck["status"], "UNKNOWN", "{stuck:#}");
    assert_eq!(
        stuck["reason"],
        "unreachable: the Azure guest agent is not ready (Not Ready: VM Agent is unresponsive.)"
    );
    assert_eq!(stuck["power_state"], "running");
    assert_eq!(stuck["report"], Value::Null, "{stuck:#}");
    for name in ["ready01", "ready02"] {
        let r = row(name);
        assert_eq!(r["status"], "HEALTHY", "{r:#}");
        assert_eq!(r["service"], "active", "{r:#}");
    }
    let seen = emu.seen();
    let posts = |vm: &str| {
        seen.iter()
            .filter(|s| s.method == "POST" && s.uri.contains(&format!("/{vm}/runCommand")))
            .count()
    };
    assert_eq!(posts("noagent01"), 0, "a run-command was attempted");
    assert_eq!((posts("ready01"), posts("ready02")), (1, 1));
    assert!(
        emu.scripts().iter().all(|(vm, _)| vm != "noagent01"),
        "{:?}",
        emu.scripts()
    );

    // the table says why; a CRITICAL VM elsewhere is worse than UNKNOWN
    let out = run(&emu, &["health", "-g", "RG", "-g", "RG-OFF"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unreachable: the Azure guest agent is not ready"),
        "{text}"
    );
    assert!(
        text.contains("4 VMs: 2 HEALTHY, 0 WARNING, 1 CRITICAL, 1 UNKNOWN"),
        "{text}"
    );

    // once the guest agent is Ready again, the VM is asked like any other
    emu.set_vm("noagent01", |vm| vm.guest_agent_ready = true);
    let out = run(&emu, &["health", "-n", "noagent01", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json(&out)[0]["status"], "HEALTHY");
}

#[test]
fn a_windows_run_command_result_is_parsed() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("win01", "RG").windows())
        .vm(EmulatedVm::synthetic("lin01", "RG"))
        .start();
    let out = run(&emu, &["vms", "-g", "RG", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json(&out);
    assert_eq!(v[0]["vm"], "lin01");
    assert_eq!(v[0]["os_type"], "Linux");
    assert_eq!(v[1]["vm"], "win01");
    assert_eq!(v[1]["os_type"], "Windows");
    // the result arrives as two statuses (StdOut, StdErr) with CRLF line ends; a Linux-only
    // parser would find no `[stdout]` frame and make the VM UNKNOWN
    let out = run(&emu, &["health", "-g", "RG", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v = json(&out);
    for r in v.as_array().unwrap() {
        assert_eq!(r["status"], "HEALTHY", "{r:#}");
        assert_eq!(r["report_source"], "status", "{r:#}");
        assert_eq!(r["report"]["agent"]["hostname"], r["vm"], "{r:#}");
    }
    let out = run(&emu, &["logs", "-n", "win01", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = json(&out)[0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("faucet_worker[1]: started"), "{text}");
}

/// What a progress bar draws: its bar characters and terminal control sequences.
fn has_progress_marks(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains('\u{2588}') || text.contains('\u{2591}') || text.contains('\u{1b}')
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal_only() {
    let mut b = AzureEmulator::builder();
    for i in 1..=3 {
        b = b.vm(EmulatedVm::synthetic(&format!("node{i:02}"), "RG"));
    }
    let emu = b.start();
    emu.set_faults(|f| f.synthetic_run_time = std::time::Duration::from_millis(500));
    let args = ["health", "-g", "RG", "--output", "json"];

    // stderr on a terminal: the bar is drawn there, then cleared; stdout stays clean JSON
    let mut cmd = cryptoctl(&emu);
    cmd.args(args);
    let out = Pty::open(24, 100)
        .expect("a pseudo-terminal")
        .run_with_stderr(cmd)
        .expect("run cryptoctl");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let terminal = String::from_utf8_lossy(&out.stderr);
    assert!(terminal.contains("/3 VMs"), "{terminal:?}");
    assert!(terminal.contains('\u{2591}'), "no bar: {terminal:?}");
    assert!(terminal.contains("\u{1b}["), "never cleared: {terminal:?}");
    assert!(!has_progress_marks(&out.stdout), "{}", show(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), 3);

    // stderr not a terminal: nothing of the bar
    let out = run(&emu, &args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!has_progress_marks(&out.stderr), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("VMs"),
        "{}",
        show(&out)
    );
    assert!(!has_progress_marks(&out.stdout), "{}", show(&out));
}

#[test]
fn deploy_preflight_says_who_the_credentials_are_and_never_prints_the_token() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("vm1", "RG").power("deallocated"))
        .start();
    let token = emu.token();
    let signature = token.rsplit('.').next().unwrap().to_owned();
    for args in [
        vec!["deploy", "-g", "RG", "-n", "vm1", "--skip-agent"],
        vec!["rollback", "-g", "RG", "-n", "vm1", "--agent"],
    ] {
        let out = run(&emu, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", show(&out));
        let all = show(&out);
        assert!(
            all.contains(&format!(
                "signed in as application {CLIENT_ID} (service principal, object id {OBJECT_ID}, tenant {TENANT}) via the environment credential"
            )),
            "{all}"
        );
        assert!(
            all.contains(&format!(
                "subscription \"{SUBSCRIPTION_NAME}\" ({SUBSCRIPTION}, Enabled) at {}",
                emu.endpoint()
            )),
            "{all}"
        );
        assert!(
            all.contains("vm1 (RG): preflight: VM is not running: VM deallocated"),
            "{all}"
        );
        assert!(!all.contains(&token) && !all.contains(&signature), "{all}");
    }
    assert!(emu.scripts().is_empty(), "nothing ran on the VM");
    assert!(
        emu.seen()
            .iter()
            .any(|s| s.uri == format!("/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01")),
        "the subscription was read"
    );

    // A user's token names the user.
    let mut claims = cryptobot_tests::azure_emulator::service_principal_claims();
    claims["idtyp"] = "user".into();
    claims["upn"] = "alice@example.com".into();
    claims["unique_name"] = "alice@example.com".into();
    claims["oid"] = "44444444-4444-4444-8444-444444444444".into();
    let emu = AzureEmulator::builder()
        .token_claims(claims)
        .vm(EmulatedVm::synthetic("vm1", "RG").power("deallocated"))
        .start();
    let out = run(&emu, &["deploy", "-n", "vm1", "--skip-agent"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains(&format!(
            "signed in as alice@example.com (user, object id 44444444-4444-4444-8444-444444444444, tenant {TENANT})"
        )),
        "{}",
        show(&out)
    );
    assert!(!show(&out).contains(&emu.token()), "{}", show(&out));

    // --dry-run of an agent rollback prints the plan and contacts nothing.
    let before = emu.seen().len();
    let out = run(
        &emu,
        &[
            "rollback",
            "-n",
            "vm1",
            "--agent",
            "--skip-app",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cryptobot-agent.previous back in place"),
        "{text}"
    );
    assert!(!text.contains("roll the bot"), "{text}");
    assert!(
        text.contains("agent_swap()"),
        "the script is printed: {text}"
    );
    assert_eq!(emu.seen().len(), before, "a dry run contacts nothing");
    // --skip-app alone would roll back nothing: a usage error.
    let out = run(&emu, &["rollback", "-n", "vm1", "--skip-app"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}
