//! The telemetry join end to end: the agent's real Application Insights sender, reading its
//! identity from an emulated IMDS, makes telemetry that `cryptoctl health --source telemetry`
//! (Application Insights and Log Analytics schemas) joins with its VM exactly, apart from a VM of
//! the same name in another resource group, and by host name only (saying so) when the agent had
//! no IMDS; `vms` (Resource Graph by default) across subscriptions gives the rows Resource
//! Manager's lists give (`vms --inventory arm`); usage errors of the new options.

use std::process::Output;

use cryptobot_agent::{
    alerts::appinsights::{METRIC_NAMES, RESOURCE_ID_PROPERTY},
    daemon::testing::sample_snapshot,
    health::Status,
};
use cryptobot_tests::{
    azure_emulator::{
        AzureEmulator, EmulatedVm, SUBSCRIPTION,
        fleet::{APP_ID, WORKSPACE_ID, fleet_subscription, vm_resource_id},
        imds::{self, Imds},
        logs::agent_envelopes,
    },
    ctl::{json_rows, run_with_query_api, show, telemetry_health},
};
use serde_json::json;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn vms_from_resource_graph_across_subscriptions() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("lin01", "RG").tag("role", "bot"))
        .vm(EmulatedVm::synthetic("win01", "RG")
            .windows()
            .power("deallocated"))
        .start();
    let other = fleet_subscription(1);
    emu.add_graph_vm(
        &other,
        EmulatedVm::synthetic("lin01", "RG").tag("role", "bot"),
    );
    emu.add_graph_vm(&other, EmulatedVm::synthetic("far01", "FAR-RG"));
    let out = run_with_query_api(
        &emu,
        &[
            "vms",
            "--subscription",
            SUBSCRIPTION,
            "--subscription",
            &other,
            "-g",
            "rg",
            "--tag",
            "role=bot",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let rows = json_rows(&out);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            vm_resource_id(SUBSCRIPTION, "RG", "lin01"),
            vm_resource_id(&other, "RG", "lin01")
        ],
        "{rows:#?}"
    );
    assert_eq!(rows[0]["size"], "Standard_B2s");
    assert_eq!(rows[0]["os_type"], "Linux");
    // the same rows as Resource Manager's lists and instance views, for the own subscription
    let before = emu.seen().len();
    let graph = run_with_query_api(&emu, &["vms", "-g", "RG", "-o", "json"]);
    let by_default: Vec<String> = emu.seen()[before..]
        .iter()
        .filter(|s| !s.uri.ends_with("/oauth2/v2.0/token"))
        .map(|s| s.uri.clone())
        .collect();
    assert!(
        by_default
            .iter()
            .all(|u| u.starts_with("/providers/Microsoft.ResourceGraph/resources?")),
        "vms asks Resource Graph by default, and nothing per VM: {by_default:#?}"
    );
    let arm = run_with_query_api(
        &emu,
        &["vms", "--inventory", "arm", "-g", "RG", "-o", "json"],
    );
    assert_eq!(json_rows(&graph), json_rows(&arm), "{}", show(&graph));
    assert!(emu.seen().iter().any(|s| {
        s.uri
            .starts_with("/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01")
    }));
    // a VM named that is not there
    let out = run_with_query_api(&emu, &["vms", "-n", "gone01"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr(&out).contains("VM gone01 not found"),
        "{}",
        show(&out)
    );
}

#[test]
fn usage_errors_contact_nothing() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("vm1", "RG"))
        .start();
    for args in [
        vec!["health", "--all", "--source", "telemetry"],
        vec!["health", "--all", "--drill"],
        vec![
            "health",
            "--all",
            "--source",
            "telemetry",
            "--app-insights",
            "/subscriptions/x/resourceGroups/y/providers/Microsoft.Insights/components/z",
        ],
        telemetry_health(&["--workspace", WORKSPACE_ID]),
        vec![
            "vms",
            "--inventory",
            "arm",
            "--all",
            "--subscription",
            SUBSCRIPTION,
            "--subscription",
            &fleet_subscription(1),
        ],
        vec!["vms", "--inventory", "arm", "--management-group", "mg"],
        telemetry_health(&["--management-group", "bad name"]),
    ] {
        let out = run_with_query_api(&emu, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
    }
    assert!(
        emu.seen()
            .iter()
            .all(|s| s.uri.ends_with("/oauth2/v2.0/token")
                || s.uri.starts_with("/subscriptions/") && !s.uri.contains("runCommand")),
        "{:#?}",
        emu.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_telemetry_joins_its_vm_exactly() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("bot01", "BOTS-A"))
        .vm(EmulatedVm::synthetic("bot01", "BOTS-B"))
        .vm(EmulatedVm::synthetic("solo01", "BOTS-A"))
        .start();
    // IMDS gives the id in its own case; ARM compares ids case-insensitively
    let imds = Imds::start(imds::compute(SUBSCRIPTION, "bots-a", "bot01", "westeurope")).await;
    imds.fail_next(&[410]);
    let envelopes = agent_envelopes("bot01", Some(&imds.endpoint())).await;
    let id = vm_resource_id(SUBSCRIPTION, "bots-a", "bot01");
    assert!(!envelopes.is_empty());
    for e in &envelopes {
        assert_eq!(
            e["data"]["baseData"]["properties"][RESOURCE_ID_PROPERTY],
            id.as_str(),
            "{e:#}"
        );
    }
    let availability = envelopes
        .iter()
        .find(|e| e["data"]["baseType"] == "AvailabilityData")
        .unwrap();
    assert_eq!(
        availability["data"]["baseData"]["properties"]["service"],
        "failed"
    );
    assert!(imds.requests() >= 2, "the 410 was retried");
    // an agent without IMDS (nothing listens there): no id, so matched by its unique name
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let solo = agent_envelopes("solo01", Some(&nowhere)).await;
    assert!(
        solo.iter()
            .all(|e| e["data"]["baseData"]["properties"][RESOURCE_ID_PROPERTY].is_null())
    );
    emu.ingest(&envelopes);
    emu.ingest(&solo);

    let report = sample_snapshot(Status::Critical).report;
    for (flag, value) in [("--app-insights", APP_ID), ("--workspace", WORKSPACE_ID)] {
        let out = tokio::task::block_in_place(|| {
            run_with_query_api(
                &emu,
                &[
                    "health",
                    "-g",
                    "BOTS-A",
                    "-g",
                    "BOTS-B",
                    "--source",
                    "telemetry",
                    flag,
                    value,
                    "-o",
                    "json",
                ],
            )
        });
        let rows = json_rows(&out);
        let row = |rg: &str, name: &str| {
            rows.iter()
                .find(|r| r["resource_group"] == rg && r["vm"] == name)
                .unwrap_or_else(|| panic!("{rg}/{name}: {rows:#?}"))
                .clone()
        };
        let a = row("BOTS-A", "bot01");
        assert_eq!(a["status"], "CRITICAL", "{flag}: {a:#}");
        assert_eq!(a["reason"], report.alerts[0].as_str(), "{a:#}");
        assert_eq!(a["service"], "failed", "{a:#}");
        // every metric the join reads is one the agent sends
        for (key, metric) in [
            ("disk_usage_percent", "health.disk_usage"),
            ("memory_usage_percent", "health.memory_usage"),
            ("heartbeat_age_seconds", "health.heartbeat_age"),
            ("restarts", "health.crash_count"),
        ] {
            assert!(METRIC_NAMES.contains(&metric));
            assert!(a[key].is_number(), "{flag}: {key}: {a:#}");
        }
        assert_eq!(a["warnings"], json!([]), "{a:#}");
        let b = row("BOTS-B", "bot01");
        assert_eq!(
            b["status"], "UNKNOWN",
            "never the other bot01's data: {b:#}"
        );
        assert_eq!(b["reason"], "no telemetry in the last 2 days");
        let s = row("BOTS-A", "solo01");
        assert_eq!(s["status"], "CRITICAL", "{s:#}");
        assert!(
            s["warnings"][0]
                .as_str()
                .unwrap()
                .contains("host name only"),
            "{s:#}"
        );
        assert!(
            stderr(&out).contains("1 VMs matched by host name only"),
            "{}",
            stderr(&out)
        );
    }
}
