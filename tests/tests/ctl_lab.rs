//! cryptoctl end to end: the Azure emulator in front of lab VMs in two resource groups, over
//! run-command and over ssh (ssh runs inside the lab's switch namespace through `--ssh-command`).
//!
//! APPSERVRG: DevNode01 (agent daemon running, healthy worker), DevNode02 (worker stopped);
//! BOTS-RG: Bot03 (no agent installed), Stopped04 (deallocated), Lost05 (unreachable).
//!
//! `health --alert` has a lab of its own: the agents' webhook points at a receiver the test runs in
//! the lab's switch namespace, so what the agents send is seen where it arrives.

use std::{
    process::Output,
    time::{Duration, Instant},
};

use cryptobot_tests::{
    Lab, Vm,
    agent::{AGENT_CONFIG, start_agent},
    agent_bin,
    azure_emulator::{AzureEmulator, EmulatedVm},
    ctl::{run, run_ssh, show},
    profile_dir, wait_until,
    webhook::WebhookReceiver,
};
use serde_json::Value;

const WORKER: &str = "faucet_worker.service";

struct Fleet {
    lab: Lab,
    emu: AzureEmulator,
}

fn fleet() -> Fleet {
    let lab = Lab::builder().vms(3).ssh(true).start();
    for vm in lab.vms() {
        vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    }
    start_agent(lab.vm(1), "", 30);
    lab.vm(2).systemctl("stop faucet_worker");
    // Bot03 has no agent: hide the bind-mounted build directory inside that VM only.
    lab.vm(3)
        .sh(&format!("mount -t tmpfs tmpfs {}", profile_dir().display()));
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::lab("DevNode01", "APPSERVRG", lab.vm(1)).tag("role", "bot"))
        .vm(EmulatedVm::lab("DevNode02", "APPSERVRG", lab.vm(2)).tag("role", "bot"))
        .vm(EmulatedVm::lab("Bot03", "BOTS-RG", lab.vm(3)))
        .vm(EmulatedVm::synthetic("Stopped04", "BOTS-RG").power("deallocated"))
        // nothing listens on port 22 of 127.0.0.1 in the lab's switch namespace
        .vm(EmulatedVm::hanging("Lost05", "BOTS-RG").public_ip("127.0.0.1"))
        .start();
    Fleet { lab, emu }
}

impl Fleet {
    fn run(&self, args: &[&str]) -> Output {
        run(&self.emu, args)
    }

    fn run_ssh(&self, args: &[&str]) -> Output {
        run_ssh(&self.emu, &self.lab, args)
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

fn row<'a>(v: &'a Value, vm: &str) -> &'a Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["vm"] == vm)
        .unwrap_or_else(|| panic!("no row for {vm}: {v:#}"))
}

fn assert_fleet_health(v: &Value, unreachable: &str) {
    let dev1 = row(v, "DevNode01");
    assert_eq!(dev1["status"], "HEALTHY", "{dev1:#}");
    assert_eq!(dev1["service"], "active");
    assert_eq!(dev1["agent_installed"], true);
    assert_eq!(dev1["report"]["service_running"], true);
    // the running daemon's report (status --json), not a one-shot check
    assert_eq!(dev1["report_source"], "status", "{dev1:#}");
    assert!(
        dev1["report"]["daemon"]["started_at"].is_string(),
        "{dev1:#}"
    );
    let dev2 = row(v, "DevNode02");
    assert_eq!(dev2["status"], "CRITICAL", "{dev2:#}");
    assert_eq!(dev2["service"], "inactive");
    assert!(
        dev2["alerts"]
            .as_array()
            .unwrap()
            .contains(&Value::from("Service is not active")),
        "{dev2:#}"
    );
    let bot3 = row(v, "Bot03");
    assert_eq!(bot3["status"], "UNKNOWN");
    assert_eq!(
        bot3["reason"],
        "cryptobot-agent is not installed (worker: active)"
    );
    assert_eq!(bot3["agent_installed"], false);
    let off = row(v, "Stopped04");
    assert_eq!(off["status"], "CRITICAL");
    assert_eq!(off["reason"], "VM is not running: VM deallocated");
    assert_eq!(off["power_state"], "deallocated");
    let lost = row(v, "Lost05");
    assert_eq!(lost["status"], "UNKNOWN");
    let reason = lost["reason"].as_str().unwrap();
    assert!(reason.starts_with("unreachable: "), "{reason}");
    assert!(reason.contains(unreachable), "{reason}");
}

#[test]
fn health_across_two_resource_groups_over_run_command() {
    let f = fleet();
    let started = Instant::now();
    let out = f.run(&[
        "health",
        "-g",
        "APPSERVRG",
        "-g",
        "BOTS-RG",
        "--timeout",
        "20s",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    assert_eq!(v.as_array().unwrap().len(), 5, "{v:#}");
    assert_fleet_health(&v, "no answer within 20s");
    assert_eq!(row(&v, "DevNode01")["transport"], "run-command");
    // the VMs were handled at once: the hanging one's 20 s bound the run
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );

    // the table: one row per VM and the summary line
    let out = f.run(&[
        "health",
        "-g",
        "APPSERVRG",
        "-g",
        "BOTS-RG",
        "--timeout",
        "20s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "FIRST ALERT",
        "Service is not active",
        "VM is not running: VM deallocated",
        "cryptobot-agent is not installed",
        "5 VMs: ",
        " 2 CRITICAL, 2 UNKNOWN",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // a tag selects across groups; one group alone gives its worst status
    let out = f.run(&["health", "--tag", "role=bot", "--output", "json"]);
    assert_eq!(json(&out).as_array().unwrap().len(), 2, "{}", show(&out));
    let out = f.run(&["health", "-g", "APPSERVRG", "-n", "DevNode01"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", show(&out));
}

#[test]
fn health_over_ssh() {
    let f = fleet();
    let out = f.run_ssh(&[
        "health",
        "-g",
        "APPSERVRG",
        "-g",
        "BOTS-RG",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    assert_fleet_health(&v, "Connection refused");
    assert_eq!(row(&v, "DevNode01")["transport"], "ssh");
    // --host overrides the address for a single VM
    let host = f.lab.vm(2).ip.clone();
    let out = f.run_ssh(&[
        "health",
        "-n",
        "DevNode02",
        "--host",
        &host,
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(json(&out)[0]["service"], "inactive");
    let out = f.run_ssh(&["health", "-g", "APPSERVRG", "--host", &host]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}

#[test]
fn health_alert_has_each_agent_send_its_alerts() {
    let lab = Lab::start(2);
    for vm in lab.vms() {
        vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    }
    // 10.200.0.1 is the switch's address, the VMs' default gateway
    let hook = WebhookReceiver::start_in(&lab.vm(1).switch_netns, "10.200.0.1");
    let config = format!(
        "[[alerts.webhook]]\nkind = \"generic\"\nurl = \"{}\"\n",
        hook.url("/hook")
    );
    for vm in lab.vms() {
        vm.write_file(AGENT_CONFIG, &config);
    }
    lab.vm(1).systemctl("stop faucet_worker");
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::lab("Sick01", "ALERTRG", lab.vm(1)))
        .vm(EmulatedVm::lab("Fine02", "ALERTRG", lab.vm(2)))
        .start();
    let args = ["health", "-g", "ALERTRG", "--output", "json"];

    // without --alert: the reports only; every agent has finished when cryptoctl returns
    let out = run(&emu, &args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    assert_eq!(row(&v, "Sick01")["status"], "CRITICAL", "{v:#}");
    assert_eq!(row(&v, "Fine02")["service"], "active", "{v:#}");
    let early: Vec<String> = hook.received().into_iter().map(|d| d.body).collect();
    assert!(early.is_empty(), "sent without --alert: {early:?}");

    // with --alert: the sick VM's agent notifies before its check returns (alerts.check_wait)
    let alert_args = [&args[..], &["--alert"]].concat();
    let out = run(&emu, &alert_args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v = json(&out);
    let sick = row(&v, "Sick01");
    assert_eq!(sick["status"], "CRITICAL", "{sick:#}");
    assert_eq!(sick["report_source"], "check", "{sick:#}");
    assert_eq!(sick["warnings"], Value::Array(vec![]), "{sick:#}");
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].path, "/hook");
    let body: Value = serde_json::from_str(&got[0].body).expect("a JSON payload");
    assert_eq!(body["status"], "CRITICAL", "{body:#}");
    assert_eq!(body["notification"]["host"], lab.vm(1).name, "{body:#}");
    assert!(
        got[0].body.contains("Service is not active"),
        "{}",
        got[0].body
    );

    // the agents' notification state persists on the VM: the same problem is not sent twice
    let out = run(&emu, &alert_args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let again: Vec<String> = hook.received().into_iter().map(|d| d.body).collect();
    assert!(again.is_empty(), "sent again: {again:?}");
}

fn agent_has(vm: &Vm, command: &str) -> bool {
    vm.command(agent_bin())
        .args([command, "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn restart_pause_resume_and_logs() {
    let f = fleet();
    let (vm1, vm2, vm3) = (f.lab.vm(1), f.lab.vm(2), f.lab.vm(3));

    // health --restart brings DevNode02's worker back (no daemon there: systemctl, with a warning)
    let out = f.run(&["health", "-g", "APPSERVRG", "--restart", "--output", "json"]);
    let v = json(&out);
    let dev2 = row(&v, "DevNode02");
    assert_eq!(dev2["actions"][0]["action"], "restart", "{}", show(&out));
    assert_eq!(dev2["actions"][0]["ok"], true, "{dev2:#}");
    assert_eq!(dev2["service"], "active", "{dev2:#}");
    assert!(
        dev2["reason"]
            .as_str()
            .unwrap()
            .contains("(was: Service is not active)"),
        "{dev2:#}"
    );
    assert_eq!(row(&v, "DevNode01")["actions"], Value::Array(vec![]));
    assert_eq!(vm2.unit_property(WORKER, "ActiveState"), "active");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: DevNode02: "), "{stderr}");

    // restart without an agent: systemctl restart, with a warning
    let before = vm3.unit_property(WORKER, "MainPID");
    let out = f.run(&[
        "restart", "-g", "BOTS-RG", "-n", "Bot03", "--output", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &json(&out)[0];
    assert_eq!(
        (r["outcome"].as_str(), r["via"].as_str()),
        (Some("done"), Some("systemctl")),
        "{r:#}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cryptobot-agent is not installed on the VM")
    );
    vm3.wait_active_state(WORKER, "active", Duration::from_secs(10));
    assert_ne!(vm3.unit_property(WORKER, "MainPID"), before);

    // restart through the agent where it can; a deallocated VM is reported, not contacted
    let out = f.run(&[
        "restart",
        "-n",
        "DevNode01",
        "-n",
        "Stopped04",
        "--force",
        "--output",
        "json",
    ]);
    let v = json(&out);
    let r1 = row(&v, "DevNode01");
    assert_eq!(r1["outcome"], "done", "{}", show(&out));
    let expected_via = if agent_has(vm1, "restart") {
        "agent"
    } else {
        "systemctl"
    };
    assert_eq!(r1["via"], expected_via);
    assert_eq!(row(&v, "Stopped04")["outcome"], "not-running");
    assert_eq!(out.status.code(), Some(2));
    vm1.wait_active_state(WORKER, "active", Duration::from_secs(10));

    // pause and resume go through the agent only
    for (args, cmd) in [
        (
            vec![
                "pause",
                "-n",
                "DevNode01",
                "--for",
                "1h",
                "--output",
                "json",
            ],
            "pause",
        ),
        (
            vec!["resume", "-n", "DevNode01", "--output", "json"],
            "resume",
        ),
    ] {
        let out = f.run(&args);
        let r = &json(&out)[0];
        if agent_has(vm1, cmd) {
            assert_eq!(r["outcome"], "done", "{}", show(&out));
            assert_eq!(out.status.code(), Some(0));
        } else {
            assert_eq!(r["outcome"], "unsupported", "{}", show(&out));
            assert_eq!(
                r["message"],
                format!("this agent version has no {cmd} command")
            );
            assert_eq!(out.status.code(), Some(2));
        }
    }
    let out = f.run(&["pause", "-n", "Bot03", "--output", "json"]);
    assert_eq!(json(&out)[0]["outcome"], "unsupported", "{}", show(&out));
    assert_eq!(
        json(&out)[0]["message"],
        "cryptobot-agent is not installed on the VM"
    );

    // logs: the worker's error lines, by priority
    vm1.write_file("/run/fake-worker/errors", "2");
    wait_until("the errors in the journal", Duration::from_secs(10), || {
        vm1.journal(WORKER).matches("simulated error").count() >= 2
    });
    let out = f.run(&[
        "logs",
        "-n",
        "DevNode01",
        "--priority",
        "err",
        "--since",
        "1h",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &json(&out)[0];
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("simulated error 2 of 2"), "{text}");
    assert!(!text.contains("heartbeat"), "only errors: {text}");
    assert_eq!(r["truncated"], false);
    // the same in the table form, and over ssh
    let out = f.run_ssh(&[
        "logs",
        "-n",
        "DevNode01",
        "--priority",
        "err",
        "--lines",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("==> DevNode01 (APPSERVRG) worker: 1 line <==\n"),
        "{text}"
    );
    assert!(text.contains("simulated error 2 of 2"), "{text}");

    // a long tail is shortened on the VM to fit run-command's 4096-byte output, and says so:
    // 300 random (incompressible) error lines logged from inside the worker's cgroup
    vm1.sh(
        "echo $$ > /sys/fs/cgroup/system.slice/faucet_worker.service/cgroup.procs && \
         for i in $(seq 300); do echo \"noise $i $(head -c 36 /dev/urandom | base64)\"; done \
         | systemd-cat -p err -t fake-worker.sh",
    );
    wait_until("the noise in the journal", Duration::from_secs(20), || {
        vm1.journal(WORKER).contains("noise 300 ")
    });
    let out = f.run(&[
        "logs",
        "-n",
        "DevNode01",
        "--priority",
        "err",
        "--lines",
        "1000",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = &json(&out)[0];
    assert_eq!(r["truncated"], true, "{}", show(&out));
    let lines = r["lines"].as_u64().unwrap();
    assert!((1..300).contains(&lines), "{lines}");
    assert_eq!(r["text"].as_str().unwrap().lines().count() as u64, lines);
    assert!(
        r["text"].as_str().unwrap().contains("noise 300 "),
        "the newest lines are kept"
    );
}

#[test]
fn hostile_values_never_run_on_a_vm() {
    let f = fleet();
    for args in [
        vec!["health", "-g", "x$(touch /tmp/pwned)"],
        vec!["health", "-n", "x$(touch /tmp/pwned)"],
        vec!["health", "--all", "--agent-path", "/x$(touch /tmp/pwned)"],
        vec!["logs", "--all", "--since", "$(touch /tmp/pwned)"],
        vec!["pause", "--all", "--for", "1h;touch /tmp/pwned"],
    ] {
        let out = f.run(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
    }
    // a tag value is only compared, never sent: it selects nothing
    let out = f.run(&["health", "--tag", "role=$(touch /tmp/pwned)"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    // the script treats its arguments as data even when handed hostile ones directly
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ctl/src/remote/script.sh"),
    )
    .unwrap();
    let vm = f.lab.vm(1);
    let mut cmd = vm.command("sh");
    cmd.args([
        "-s",
        "--",
        "health",
        "/x$(touch /tmp/pwned)",
        "0;touch /tmp/pwned",
        "$(touch /tmp/pwned)",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CRYPTOCTL-RESULT v=1 action=health"),
        "{stdout}"
    );
    let out = vm
        .command("sh")
        .args([
            "-c",
            &script,
            "script",
            "x$(touch /tmp/pwned)",
            "/bin/true",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("action=invalid"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for vm in f.lab.vms() {
        assert!(
            vm.read_file("/tmp/pwned").is_err(),
            "{} ran a hostile value",
            vm.name
        );
    }
}
