//! Fleets at scale in the emulator: VMs beyond the emulator's own subscription (seen only by
//! Resource Graph), the telemetry the agents would have sent (generated for synthetic fleets, or
//! ingested from real envelopes), management groups, and the faults of Resource Graph and the
//! query APIs. [`AzureEmulator::add_fleet`] makes a synthetic fleet of any size in any number of
//! subscriptions with every kind of VM a fleet has (healthy, critical, warning, silent,
//! deallocated, telemetry without a resource id, two VMs of one name in different resource
//! groups) and returns what `health` should say of each.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Map, Value, json};

use super::{AzureEmulator, EmulatedVm, kql::Table, logs};

mod synthetic;

pub use synthetic::{FleetKind, FleetSpec, FleetVm, fleet_subscription};

/// The Application ID the emulator's Application Insights query API answers for.
pub const APP_ID: &str = "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345";
/// The Workspace ID its Log Analytics query API answers for (the same telemetry).
pub const WORKSPACE_ID: &str = "63613592-b6f7-4c3d-a390-22ba13102111";
/// The management group that holds every subscription of the synthetic fleets.
pub const MANAGEMENT_GROUP: &str = "cryptobot-fleet";
/// The agent's `ai.cloud.role`.
pub const ROLE: &str = "cryptobot-agent";

/// A VM outside the emulator's own subscription (in Resource Graph, and to Resource Manager's VM
/// routes and run-command under its subscription).
#[derive(Debug, Clone)]
pub(super) struct ScaleVm {
    pub(super) subscription: String,
    pub(super) vm: EmulatedVm,
}

/// One telemetry item as Application Insights stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// `cloud_RoleName`.
    pub role: String,
    /// `cloud_RoleInstance` (the host name).
    pub instance: String,
    /// The `vm_resource_id` property, when the agent knew it.
    pub resource_id: Option<String>,
    /// What it is.
    pub signal: Signal,
}

/// A metric point or an availability result.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// `customMetrics`.
    Metric {
        /// `health.disk_usage`, …
        name: String,
        /// Its value.
        value: f64,
    },
    /// `availabilityResults`.
    Availability {
        /// The agent's status word.
        status: String,
        /// The worker unit's state.
        service: String,
        /// The first alert, or `HEALTHY`.
        message: String,
    },
}

/// Faults and limits of Resource Graph and the query APIs.
#[derive(Debug, Clone)]
pub struct TelemetryFaults {
    /// Resource Graph's first page says `resultTruncated: "true"` and gives no `$skipToken`.
    pub graph_truncate: bool,
    /// Rows per Resource Graph page at most (the client's `$top` applies below it).
    pub graph_page_limit: usize,
    /// Resource Graph queries allowed per window, per caller.
    pub graph_quota: u32,
    /// The quota window.
    pub graph_window: Duration,
    /// The next N query API requests answer 429.
    pub query_throttle_next: u32,
    /// `Retry-After` seconds of those.
    pub query_retry_after: u64,
    /// The next N query API requests answer 500.
    pub query_fail_next: u32,
    /// Answers carry `error: PartialError` and only the first half of the rows.
    pub query_partial: bool,
    /// Answers list their columns (and cells) in reverse order.
    pub query_reverse_columns: bool,
    /// Answers leave out this column.
    pub query_drop_column: Option<String>,
}

impl Default for TelemetryFaults {
    fn default() -> Self {
        TelemetryFaults {
            graph_truncate: false,
            graph_page_limit: 1000,
            graph_quota: 15,
            graph_window: Duration::from_secs(5),
            query_throttle_next: 0,
            query_retry_after: 1,
            query_fail_next: 0,
            query_partial: false,
            query_reverse_columns: false,
            query_drop_column: None,
        }
    }
}

/// What Resource Graph and the query APIs were asked.
#[derive(Debug, Clone, Default)]
pub struct TelemetryStats {
    /// Resource Graph requests (pages), 429s included.
    pub graph_requests: u32,
    /// The most subscriptions one Resource Graph request named.
    pub max_subscriptions_per_request: usize,
    /// Resource Graph requests answered 429 for the quota.
    pub graph_throttled: u32,
    /// Query API requests, 429s included.
    pub query_requests: u32,
}

/// The state behind Resource Graph and the query APIs.
#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) extra_vms: Vec<ScaleVm>,
    pub(super) records: Vec<Record>,
    pub(super) management_groups: BTreeMap<String, Vec<String>>,
    pub(super) faults: TelemetryFaults,
    pub(super) stats: TelemetryStats,
    pub(super) graph: super::graph::Sessions,
    pub(super) tables: Option<std::sync::Arc<TableSet>>,
}

/// The telemetry as tables of both schemas.
#[derive(Debug)]
pub(super) struct TableSet {
    pub(super) app_insights: std::collections::HashMap<String, Table>,
    pub(super) log_analytics: std::collections::HashMap<String, Table>,
}

impl Store {
    /// The tables of the records (built once per change).
    pub(super) fn tables(&mut self) -> std::sync::Arc<TableSet> {
        if self.tables.is_none() {
            self.tables = Some(std::sync::Arc::new(build_tables(&self.records)));
        }
        self.tables.clone().expect("built")
    }

    fn push(&mut self, r: Record) {
        self.tables = None;
        self.records.push(r);
    }
}

fn build_tables(records: &[Record]) -> TableSet {
    let (mut metrics, mut avail, mut la_metrics, mut la_avail) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in records {
        let time = json!(logs::rfc3339(r.time_ms));
        let mut dims = Map::new();
        dims.insert("host".into(), json!(r.instance));
        if let Some(id) = &r.resource_id {
            dims.insert("vm_resource_id".into(), json!(id));
        }
        match &r.signal {
            Signal::Metric { name, value } => {
                metrics.push(vec![
                    time.clone(),
                    json!(name),
                    json!(value),
                    json!(1),
                    json!(value),
                    json!(r.role),
                    json!(r.instance),
                    Value::Object(dims.clone()),
                ]);
                la_metrics.push(vec![
                    time,
                    json!(name),
                    json!(value),
                    json!(1),
                    json!(value),
                    json!(value),
                    json!(r.role),
                    json!(r.instance),
                    Value::Object(dims),
                ]);
            }
            Signal::Availability {
                status,
                service,
                message,
            } => {
                dims.insert("status".into(), json!(status));
                dims.insert("service".into(), json!(service));
                let success = status == "HEALTHY";
                avail.push(vec![
                    time.clone(),
                    json!("faucet_worker health"),
                    json!(if success { "1" } else { "0" }),
                    json!(message),
                    json!(r.role),
                    json!(r.instance),
                    Value::Object(dims.clone()),
                ]);
                la_avail.push(vec![
                    time,
                    json!("faucet_worker health"),
                    json!(success),
                    json!(message),
                    json!(r.role),
                    json!(r.instance),
                    Value::Object(dims),
                ]);
            }
        }
    }
    let t = |cols: &[&str], rows| Table {
        columns: cols.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    };
    let ai = [
        "timestamp",
        "name",
        "value",
        "valueCount",
        "valueSum",
        "cloud_RoleName",
        "cloud_RoleInstance",
        "customDimensions",
    ];
    let av = [
        "timestamp",
        "name",
        "success",
        "message",
        "cloud_RoleName",
        "cloud_RoleInstance",
        "customDimensions",
    ];
    let la = [
        "TimeGenerated",
        "Name",
        "Sum",
        "ItemCount",
        "Min",
        "Max",
        "AppRoleName",
        "AppRoleInstance",
        "Properties",
    ];
    let lav = [
        "TimeGenerated",
        "Name",
        "Success",
        "Message",
        "AppRoleName",
        "AppRoleInstance",
        "Properties",
    ];
    TableSet {
        app_insights: [
            ("customMetrics".to_owned(), t(&ai, metrics)),
            ("availabilityResults".to_owned(), t(&av, avail)),
        ]
        .into(),
        log_analytics: [
            ("AppMetrics".to_owned(), t(&la, la_metrics)),
            ("AppAvailabilityResults".to_owned(), t(&lav, la_avail)),
        ]
        .into(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…]Z` (or `+00:00`) in milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut ms = 0;
    if b[19] == b'.' {
        let digits: String = text[20..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        ms = format!("{:0<3}", &digits[..digits.len().min(3)])
            .parse()
            .ok()?;
    }
    // days from civil (proleptic Gregorian)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

/// The records an Application Insights resource makes of the agent's envelopes (metrics and
/// availability results; other items are not read back).
pub fn records_of(envelopes: &[Value]) -> Vec<Record> {
    let mut out = Vec::new();
    for e in envelopes {
        let Some(time_ms) = e["time"].as_str().and_then(parse_time) else {
            continue;
        };
        let base = &e["data"]["baseData"];
        let props = &base["properties"];
        let (role, instance) = (
            e["tags"]["ai.cloud.role"].as_str().unwrap_or("").to_owned(),
            e["tags"]["ai.cloud.roleInstance"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
        let resource_id = props["vm_resource_id"].as_str().map(str::to_owned);
        let mut push = |signal| {
            out.push(Record {
                time_ms,
                role: role.clone(),
                instance: instance.clone(),
                resource_id: resource_id.clone(),
                signal,
            });
        };
        match e["data"]["baseType"].as_str() {
            Some("MetricData") => {
                if let (Some(name), Some(value)) = (
                    base["metrics"][0]["name"].as_str(),
                    base["metrics"][0]["value"].as_f64(),
                ) {
                    push(Signal::Metric {
                        name: name.to_owned(),
                        value,
                    });
                }
            }
            Some("AvailabilityData") => push(Signal::Availability {
                status: props["status"].as_str().unwrap_or("").to_owned(),
                service: props["service"].as_str().unwrap_or("").to_owned(),
                message: base["message"].as_str().unwrap_or("").to_owned(),
            }),
            _ => {}
        }
    }
    out
}

/// The resource id of a VM.
pub fn vm_resource_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

impl AzureEmulator {
    /// Stores the telemetry an agent sent (its Track API envelopes) as Application Insights
    /// would, for the query APIs to read back.
    pub fn ingest(&self, envelopes: &[Value]) {
        let mut s = self.state.lock().expect("state");
        for r in records_of(envelopes) {
            s.fleet.push(r);
        }
    }

    /// Adds a VM in another subscription (in Resource Graph, and to Resource Manager under that
    /// subscription).
    pub fn add_graph_vm(&self, subscription: &str, vm: EmulatedVm) {
        let mut s = self.state.lock().expect("state");
        s.fleet.extra_vms.push(ScaleVm {
            subscription: subscription.to_owned(),
            vm,
        });
    }

    /// Changes the faults of Resource Graph and the query APIs.
    pub fn set_telemetry_faults(&self, f: impl FnOnce(&mut TelemetryFaults)) {
        let mut s = self.state.lock().expect("state");
        f(&mut s.fleet.faults);
        // new settings, a new quota window (as if the old one had passed)
        s.fleet.graph.new_window();
    }

    /// What Resource Graph and the query APIs were asked so far.
    pub fn telemetry_stats(&self) -> TelemetryStats {
        self.state.lock().expect("state").fleet.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_the_agent_writes_them() {
        let ms = 1_767_225_600_123;
        assert_eq!(parse_time(&logs::rfc3339(ms)), Some(ms));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(
            parse_time("2026-01-01T00:00:00.5+00:00"),
            Some(1_767_225_600_500)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
