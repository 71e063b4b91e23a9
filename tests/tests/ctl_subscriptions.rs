//! Several subscriptions at once against the Azure emulator: `health`, `restart` and `logs` over
//! run-command take their VMs from one Resource Graph query across every `--subscription` and
//! reach each VM under its own subscription, two VMs of one name and resource group in two
//! subscriptions included (their rows carry the resource id); the commands that work in one
//! subscription refuse several; and a `--drill` stopped by Ctrl-C keeps each finished result on
//! its own VM's row.

use std::{process::Stdio, time::Duration};

use cryptobot_tests::{
    azure_emulator::{
        AzureEmulator, EmulatedVm, SUBSCRIPTION,
        fleet::{fleet_subscription, vm_resource_id},
    },
    ctl::{cryptoctl, json_rows, run, show, telemetry_health},
    wait_until,
};

#[test]
fn health_restart_and_logs_reach_each_vm_in_its_own_subscription() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("bot01", "RG"))
        .vm(EmulatedVm::synthetic("off01", "RG").power("deallocated"))
        .start();
    let other = fleet_subscription(1);
    // the same name and resource group in the other subscription: another VM
    emu.add_graph_vm(&other, EmulatedVm::synthetic("bot01", "RG"));
    emu.add_graph_vm(&other, EmulatedVm::synthetic("far01", "FAR-RG"));
    let subs = ["--subscription", SUBSCRIPTION, "--subscription", &other];

    let out = run(
        &emu,
        &[&["health", "--all", "-o", "json"][..], &subs].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "off01 is CRITICAL: {}",
        show(&out)
    );
    let rows = json_rows(&out);
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["resource_id"]
                    .as_str()
                    .unwrap_or("-")
                    .to_ascii_lowercase(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [
        (SUBSCRIPTION, "RG", "bot01", "HEALTHY"),
        (SUBSCRIPTION, "RG", "off01", "CRITICAL"),
        (other.as_str(), "RG", "bot01", "HEALTHY"),
        (other.as_str(), "FAR-RG", "far01", "HEALTHY"),
    ]
    .iter()
    .map(|(s, g, n, st)| {
        (
            vm_resource_id(s, g, n).to_ascii_lowercase(),
            (*st).to_owned(),
        )
    })
    .collect();
    want.sort();
    assert_eq!(got, want, "{rows:#?}");
    let asked = |verb: &str| -> Vec<String> {
        emu.seen()
            .iter()
            .filter(|s| s.method == "POST" && s.uri.contains("/runCommand"))
            .map(|s| s.uri.clone())
            .filter(|u| verb.is_empty() || u.contains(verb))
            .collect()
    };
    for id in [
        vm_resource_id(SUBSCRIPTION, "RG", "bot01"),
        vm_resource_id(&other, "RG", "bot01"),
        vm_resource_id(&other, "FAR-RG", "far01"),
    ] {
        assert!(
            asked("")
                .iter()
                .any(|u| u.starts_with(&format!("{id}/runCommand"))),
            "{id} was not asked: {:#?}",
            asked("")
        );
    }
    assert!(
        emu.seen().iter().any(|s| s
            .uri
            .starts_with("/providers/Microsoft.ResourceGraph/resources?")),
        "the VMs came from Resource Graph"
    );

    let before = asked("").len();
    let out = run(
        &emu,
        &[&["restart", "-n", "bot01", "-o", "json"][..], &subs].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(json_rows(&out).len(), 2, "both bot01: {}", show(&out));
    let restarted = &asked("")[before..];
    assert_eq!(restarted.len(), 2, "{restarted:#?}");
    for sub in [SUBSCRIPTION, other.as_str()] {
        assert!(
            restarted
                .iter()
                .any(|u| u.starts_with(&format!("/subscriptions/{sub}/"))),
            "{restarted:#?}"
        );
    }

    let out = run(
        &emu,
        &[&["logs", "-g", "FAR-RG", "-n", "far01"][..], &subs].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for (verb, args) in [
        ("pause", &["pause", "-n", "bot01", "--for", "1h"][..]),
        ("resume", &["resume", "-n", "bot01"][..]),
    ] {
        let before = asked("").len();
        let out = run(&emu, &[args, &subs].concat());
        assert_eq!(out.status.code(), Some(0), "{verb}: {}", show(&out));
        assert_eq!(asked("").len() - before, 2, "{verb}: both bot01");
    }
}

#[test]
fn commands_of_one_subscription_refuse_several() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("bot01", "RG"))
        .start();
    let other = fleet_subscription(1);
    for command in [
        vec!["vms", "--inventory", "arm", "--all"],
        vec![
            "deploy",
            "-g",
            "RG",
            "--repo-url",
            "https://example.com/bot.git",
        ],
        vec!["rollback", "-g", "RG"],
        vec![
            "alerts",
            "show",
            "--app-insights",
            "/subscriptions/00000000-0000-4000-8000-00000000c0de/resourceGroups/rg/providers/Microsoft.Insights/components/ai",
        ],
    ] {
        let args = [
            &command[..],
            &["--subscription", SUBSCRIPTION, "--subscription", &other],
        ]
        .concat();
        let out = run(&emu, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("works in one subscription"),
            "{}",
            show(&out)
        );
    }
    assert!(emu.seen().is_empty(), "usage errors contact nothing");
}

/// The drill's results are matched to rows by resource id: after Ctrl-C only the finished ones
/// come back, and each must land on its own VM's row (a01 hangs, b01 answers).
#[test]
fn an_interrupted_drill_keeps_each_result_on_its_own_row() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::hanging("a01", "RG"))
        .vm(EmulatedVm::synthetic("b01", "RG"))
        .start();
    // no telemetry at all: both are silent, so both are drilled
    let child = cryptoctl(&emu)
        .env("CRYPTOCTL_QUERY_ENDPOINT", emu.endpoint())
        .args(telemetry_health(&[
            "--drill",
            "--poll-interval",
            "100ms",
            "-o",
            "json",
        ]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "b01 answered, a01 still running",
        Duration::from_secs(30),
        || {
            let seen = emu.seen();
            let answered = seen
                .iter()
                .any(|s| s.method == "GET" && s.uri.contains("monitor=true") && s.status == 200);
            let hanging = seen
                .iter()
                .any(|s| s.method == "POST" && s.uri.contains("/a01/runCommand"));
            answered && hanging
        },
    );
    let out = cryptobot_tests::ctl::interrupt(child);
    let rows = json_rows(&out);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["vm"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {rows:#?}"))
    };
    assert_eq!(row("a01")["source"], "telemetry", "{rows:#?}");
    assert_eq!(row("a01")["status"], "UNKNOWN", "{rows:#?}");
    assert_eq!(row("b01")["source"], "agent", "{rows:#?}");
    assert_eq!(row("b01")["status"], "HEALTHY", "{rows:#?}");
}
