//! The join against plain values: the right row for each kind of VM, and each bad input
//! (missing or reordered columns, unknown statuses, null metrics, telemetry of VMs that are not
//! listed, names that several VMs share) a correct row or UNKNOWN with the reason.

use super::*;
use crate::arm::logs_query::Column;
use serde_json::json;

const SUB: &str = "00000000-0000-4000-8000-00000000c0de";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T21:10:00Z")
        .unwrap()
        .to_utc()
}

fn at(minutes_ago: i64) -> String {
    (now() - chrono::Duration::minutes(minutes_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn vm(rg: &str, name: &str, power: &str) -> GraphVm {
    let row = json!({
        "id": format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"),
        "name": name, "location": "westeurope", "subscriptionId": SUB,
        "powerState": format!("PowerState/{power}"), "powerDisplay": format!("VM {power}"),
        "computerName": name,
    });
    GraphVm::from_row(row.as_object().unwrap()).unwrap()
}

fn id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourcegroups/{rg}/providers/microsoft.compute/virtualmachines/{name}")
        .to_ascii_lowercase()
}

const COLUMNS: [&str; 8] = [
    "resource_id",
    "host",
    "signal",
    "time",
    "value",
    "status",
    "service",
    "text",
];

fn table(columns: &[&str], rows: Vec<Vec<Value>>) -> Table {
    Table {
        name: "PrimaryResult".into(),
        columns: columns
            .iter()
            .map(|c| Column {
                name: (*c).into(),
                kind: "string".into(),
            })
            .collect(),
        rows,
    }
}

/// The rows a healthy (or not) agent's last cycle makes, cells as the v1 API types them.
fn report(
    rid: &str,
    host: &str,
    minutes_ago: i64,
    status: &str,
    text: &str,
    active: &str,
) -> Vec<Vec<Value>> {
    let t = at(minutes_ago);
    let mut rows = vec![vec![
        json!(rid),
        json!(host),
        json!("availability"),
        json!(t),
        Value::Null,
        json!(status),
        json!(if active == "1" { "active" } else { "failed" }),
        json!(text),
    ]];
    for (name, value) in [
        (DISK, "41"),
        (MEMORY, "22.4"),
        (HEARTBEAT, "3"),
        (CRASHES, "0"),
        (ACTIVE, active),
    ] {
        rows.push(vec![
            json!(rid),
            json!(host),
            json!(name),
            json!(t),
            json!(value),
            Value::Null,
            Value::Null,
            Value::Null,
        ]);
    }
    rows
}

fn run(inv: &[GraphVm], t: &Table) -> Joined {
    let tel = read(t);
    join(
        inv,
        tel.as_ref().map_err(String::as_str),
        now(),
        Duration::from_secs(600),
    )
}

fn row<'a>(j: &'a Joined, rg: &str, name: &str) -> &'a VmHealth {
    j.rows
        .iter()
        .find(|r| r.vm == name && r.resource_group == rg)
        .unwrap_or_else(|| panic!("no row {rg}/{name}"))
}

#[test]
fn each_kind_of_vm_gets_its_row() {
    let inv = [
        vm("RG-A", "ok", "running"),
        vm("RG-A", "down", "running"),
        vm("RG-A", "silent", "running"),
        vm("RG-A", "never", "running"),
        vm("RG-A", "off", "deallocated"),
        vm("RG-A", "twin", "running"),
        vm("RG-B", "twin", "running"),
    ];
    let mut rows = report(&id("RG-A", "ok"), "ok", 1, "HEALTHY", "HEALTHY", "1");
    rows.extend(report(
        &id("RG-A", "down"),
        "down",
        2,
        "CRITICAL",
        "Service is not active",
        "0",
    ));
    rows.extend(report(
        &id("RG-A", "silent"),
        "silent",
        14,
        "HEALTHY",
        "HEALTHY",
        "1",
    ));
    rows.extend(report(
        &id("RG-A", "off"),
        "off",
        600,
        "HEALTHY",
        "HEALTHY",
        "1",
    ));
    // the ids as the agent read them from IMDS: any case
    rows.extend(report(
        &id("RG-A", "twin").to_ascii_uppercase(),
        "twin",
        1,
        "HEALTHY",
        "HEALTHY",
        "1",
    ));
    rows.extend(report(
        &id("RG-B", "twin"),
        "twin",
        1,
        "WARNING",
        "Disk usage high: 85%",
        "1",
    ));
    // an older result of "ok" that must not win
    rows.extend(report(&id("RG-A", "ok"), "ok", 30, "CRITICAL", "old", "0"));
    let j = run(&inv, &table(&COLUMNS, rows));

    let ok = row(&j, "RG-A", "ok");
    assert_eq!(ok.status, Status::Healthy);
    assert_eq!((ok.reason.as_deref(), ok.error.as_ref()), (None, None));
    assert_eq!(ok.service.as_deref(), Some("active"));
    assert_eq!(
        (ok.disk_usage_percent, ok.memory_usage_percent),
        (Some(41), Some(22))
    );
    assert_eq!((ok.heartbeat_age_seconds, ok.restarts), (Some(3), Some(0)));
    assert_eq!(ok.data_age_seconds, Some(Some(60)));
    assert_eq!((ok.source, ok.transport), (Some("telemetry"), "none"));

    let down = row(&j, "RG-A", "down");
    assert_eq!(down.status, Status::Critical);
    assert_eq!(down.reason.as_deref(), Some("Service is not active"));
    assert_eq!(down.service.as_deref(), Some("failed"));

    let silent = row(&j, "RG-A", "silent");
    assert_eq!(silent.status, Status::Unknown);
    assert_eq!(silent.reason.as_deref(), Some("no telemetry for 14 min"));
    assert_eq!(silent.error.as_ref().unwrap().kind, "silent");

    let never = row(&j, "RG-A", "never");
    assert_eq!(
        never.reason.as_deref(),
        Some("no telemetry in the last 2 days")
    );
    assert_eq!(never.data_age_seconds, Some(None));

    let off = row(&j, "RG-A", "off");
    assert_eq!(off.status, Status::Critical);
    assert_eq!(
        off.reason.as_deref(),
        Some("VM is not running: VM deallocated")
    );
    assert_eq!(off.power_state.as_deref(), Some("deallocated"));

    // one name, two resource groups: each its own telemetry
    assert_eq!(row(&j, "RG-A", "twin").status, Status::Healthy);
    let b = row(&j, "RG-B", "twin");
    assert_eq!(b.status, Status::Warning);
    assert_eq!(b.reason.as_deref(), Some("Disk usage high: 85%"));
    assert!(j.by_name.is_empty() && j.unmatched == 0, "{j:?}");
}

#[test]
fn reordered_columns_are_read_by_name() {
    let inv = [vm("RG", "a", "running")];
    let rows = report(
        &id("RG", "a"),
        "a",
        1,
        "CRITICAL",
        "Service is not active",
        "0",
    );
    let mut order: Vec<usize> = (0..COLUMNS.len()).collect();
    order.reverse();
    let cols: Vec<&str> = order.iter().map(|&i| COLUMNS[i]).collect();
    let rows = rows
        .into_iter()
        .map(|r| order.iter().map(|&i| r[i].clone()).collect())
        .collect();
    let j = run(&inv, &table(&cols, rows));
    let a = &j.rows[0];
    assert_eq!(a.status, Status::Critical);
    assert_eq!(a.disk_usage_percent, Some(41));
}

#[test]
fn a_missing_column_makes_every_running_vm_unknown_with_the_reason() {
    let inv = [vm("RG", "a", "running"), vm("RG", "b", "deallocated")];
    let cols: Vec<&str> = COLUMNS.iter().copied().filter(|c| *c != "signal").collect();
    let j = run(&inv, &table(&cols, vec![]));
    assert_eq!(j.rows[0].status, Status::Unknown);
    assert_eq!(
        j.rows[0].reason.as_deref(),
        Some("the telemetry answer has no column \"signal\": it is unusable")
    );
    assert_eq!(j.rows[0].data_age_seconds, None);
    // the power state still counts
    assert_eq!(j.rows[1].status, Status::Critical);
    // neither id nor host
    let cols: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "resource_id" && *c != "host")
        .collect();
    assert!(read(&table(&cols, vec![])).is_err());
}

#[test]
fn unknown_statuses_null_metrics_and_bad_cells() {
    let inv = [
        vm("RG", "a", "running"),
        vm("RG", "b", "running"),
        vm("RG", "c", "running"),
    ];
    let mut rows = report(&id("RG", "a"), "a", 1, "SORT-OF-OK", "x", "1");
    let mut b = report(&id("RG", "b"), "b", 1, "HEALTHY", "HEALTHY", "1");
    for r in &mut b[1..] {
        r[4] = Value::Null; // every metric null
    }
    b[0][6] = Value::Null; // no service in the availability result
    rows.extend(b);
    // native cells (numbers, not strings) as the newer API sends them
    let mut c = report(&id("RG", "c"), "c", 1, "HEALTHY", "HEALTHY", "1");
    for r in &mut c[1..] {
        if let Some(s) = r[4].as_str() {
            r[4] = json!(s.parse::<f64>().unwrap());
        }
    }
    rows.extend(c);
    // rows that cannot be read: no time, a time that is not one, no signal, no source
    rows.push(vec![
        json!(id("RG", "a")),
        json!("a"),
        json!("availability"),
        Value::Null,
        Value::Null,
        json!("CRITICAL"),
        Value::Null,
        json!("x"),
    ]);
    rows.push(vec![
        json!(id("RG", "a")),
        json!("a"),
        json!("availability"),
        json!("yesterday"),
        Value::Null,
        json!("CRITICAL"),
        Value::Null,
        json!("x"),
    ]);
    rows.push(vec![
        json!(id("RG", "a")),
        json!("a"),
        Value::Null,
        json!(at(0)),
        Value::Null,
        json!("CRITICAL"),
        Value::Null,
        json!("x"),
    ]);
    rows.push(vec![
        Value::Null,
        Value::Null,
        json!("availability"),
        json!(at(0)),
        Value::Null,
        json!("CRITICAL"),
        Value::Null,
        json!("x"),
    ]);
    let t = table(&COLUMNS, rows);
    assert_eq!(read(&t).unwrap().bad_rows, 4);
    let j = run(&inv, &t);
    let a = row(&j, "RG", "a");
    assert_eq!(a.status, Status::Unknown);
    assert_eq!(
        a.reason.as_deref(),
        Some("the agent's telemetry says \"SORT-OF-OK\", which is no status")
    );
    let b = row(&j, "RG", "b");
    assert_eq!(b.status, Status::Healthy);
    assert_eq!(
        (b.disk_usage_percent, b.restarts, b.service.as_deref()),
        (None, None, None)
    );
    let c = row(&j, "RG", "c");
    assert_eq!(
        (c.status, c.memory_usage_percent, c.service.as_deref()),
        (Status::Healthy, Some(22), Some("active"))
    );
}

#[test]
fn telemetry_of_unlisted_vms_is_ignored_and_counted() {
    let inv = [vm("RG", "a", "running")];
    let mut rows = report(&id("RG", "a"), "a", 1, "HEALTHY", "HEALTHY", "1");
    rows.extend(report(
        &id("OTHER", "a"),
        "a",
        1,
        "CRITICAL",
        "not mine",
        "0",
    ));
    rows.extend(report("", "ghost", 1, "CRITICAL", "not mine either", "0"));
    let j = run(&inv, &table(&COLUMNS, rows));
    assert_eq!(j.rows.len(), 1);
    assert_eq!(j.rows[0].status, Status::Healthy);
    assert_eq!(j.unmatched, 2);
}

#[test]
fn telemetry_without_an_id_matches_a_unique_name_only() {
    let inv = [
        vm("RG-A", "solo", "running"),
        vm("RG-A", "twin", "running"),
        vm("RG-B", "twin", "running"),
    ];
    let mut rows = report("", "SOLO", 1, "CRITICAL", "Service is not active", "0");
    rows.extend(report("", "twin", 1, "HEALTHY", "HEALTHY", "1"));
    let j = run(&inv, &table(&COLUMNS, rows));
    let solo = row(&j, "RG-A", "solo");
    assert_eq!(solo.status, Status::Critical);
    assert_eq!(solo.warnings, [BY_NAME]);
    assert_eq!(j.by_name, ["solo"]);
    for rg in ["RG-A", "RG-B"] {
        let t = row(&j, rg, "twin");
        assert_eq!(t.status, Status::Unknown, "never another VM's data");
        assert_eq!(t.reason.as_deref(), Some("no telemetry in the last 2 days"));
        assert!(
            t.warnings[0].contains("2 listed VMs have that name"),
            "{:?}",
            t.warnings
        );
    }
    assert_eq!((j.ambiguous, j.unmatched), (1, 0));
}

#[test]
fn the_queries_use_each_schemas_names() {
    let ai = query(Schema::AppInsights);
    assert!(
        ai.contains("(availabilityResults\n| where timestamp > ago(2d)"),
        "{ai}"
    );
    assert!(
        ai.contains("tolower(tostring(customDimensions.vm_resource_id))"),
        "{ai}"
    );
    assert!(ai.ends_with("| project resource_id, host = cloud_RoleInstance, signal, time = timestamp, value, status, service, text"), "{ai}");
    let la = query(Schema::LogAnalytics);
    assert!(
        la.contains("(AppMetrics\n") && la.contains("value = Sum / ItemCount"),
        "{la}"
    );
    assert!(
        la.contains("by resource_id, AppRoleInstance, signal"),
        "{la}"
    );
    assert_eq!(age_text(59), "59 s");
    assert_eq!(age_text(14 * 60 + 5), "14 min");
    assert_eq!(age_text(5 * 3600), "5 h");
    assert_eq!(age_text(3 * 86_400), "3 days");
}
