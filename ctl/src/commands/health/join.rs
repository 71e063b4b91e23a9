//! The pure part of `health --source telemetry`: the query that reads back the newest of each
//! signal the agents send (the availability result and every `health.*` metric, per VM), the
//! reading of its answer (columns found by name, cells as strings or native values), and the join
//! of that telemetry with the Resource Graph inventory into one row per VM.
//!
//! The join is exact: the agents tag their telemetry with the VM's resource id (from IMDS), and ids
//! compare case-insensitively, as ARM's do. Telemetry without an id (an agent that could not reach
//! IMDS, or an older one) is matched by host name, only when exactly one listed VM has that name
//! (or computer name); such rows say so. A running VM whose newest telemetry is older than
//! `--stale-after` is UNKNOWN (`no telemetry for 14 min`): the dead-man's switch no agent can be.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    arm::{logs_query::Table, resource_graph::GraphVm},
    model::{Status, VmHealth},
};

/// How far back the query looks (ISO 8601, the query API's `timespan`).
pub const LOOKBACK: &str = "P2D";
/// The same, for people.
const LOOKBACK_TEXT: &str = "2 days";
/// The agent's `ai.cloud.role`.
const ROLE: &str = "cryptobot-agent";

/// The agent's metrics this reads (`appinsights::METRIC_NAMES` of the agent; a test checks them).
pub const DISK: &str = "health.disk_usage";
/// See [`DISK`].
pub const MEMORY: &str = "health.memory_usage";
/// See [`DISK`].
pub const HEARTBEAT: &str = "health.heartbeat_age";
/// See [`DISK`].
pub const CRASHES: &str = "health.crash_count";
/// See [`DISK`].
pub const ACTIVE: &str = "health.service_active";

/// Which tables the telemetry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Application Insights (`availabilityResults`, `customMetrics`, `customDimensions`).
    AppInsights,
    /// A Log Analytics workspace (`AppAvailabilityResults`, `AppMetrics`, `Properties`).
    LogAnalytics,
}

/// The query: one row per VM (by resource id and host) and signal, the newest of each, with the
/// columns `resource_id, host, signal, time, value, status, service, text`.
pub fn query(schema: Schema) -> String {
    let (avail, metrics, time, role, instance, dims, name, message, value) = match schema {
        Schema::AppInsights => (
            "availabilityResults",
            "customMetrics",
            "timestamp",
            "cloud_RoleName",
            "cloud_RoleInstance",
            "customDimensions",
            "name",
            "message",
            "value",
        ),
        Schema::LogAnalytics => (
            "AppAvailabilityResults",
            "AppMetrics",
            "TimeGenerated",
            "AppRoleName",
            "AppRoleInstance",
            "Properties",
            "Name",
            "Message",
            "Sum / ItemCount",
        ),
    };
    format!(
        "union\n\
         ({avail}\n\
         | where {time} > ago(2d)\n\
         | where {role} == '{ROLE}'\n\
         | extend signal = 'availability', status = tostring({dims}.status), \
         service = tostring({dims}.service), text = {message}),\n\
         ({metrics}\n\
         | where {time} > ago(2d)\n\
         | where {role} == '{ROLE}'\n\
         | where {name} startswith 'health.'\n\
         | extend signal = {name}, value = {value})\n\
         | extend resource_id = tolower(tostring({dims}.vm_resource_id))\n\
         | summarize arg_max({time}, value, status, service, text) by resource_id, {instance}, signal\n\
         | project resource_id, host = {instance}, signal, time = {time}, value, status, service, text"
    )
}

/// The newest availability result of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    /// When.
    pub time: DateTime<Utc>,
    /// The agent's status word.
    pub status: Option<String>,
    /// The worker unit's state.
    pub service: Option<String>,
    /// The first alert, or `HEALTHY`.
    pub text: Option<String>,
}

/// The newest of each signal of one telemetry source (a VM).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The host name it sent as (`cloud_RoleInstance`).
    pub host: String,
    /// The newest availability result.
    pub availability: Option<Availability>,
    /// Each `health.*` metric: when, and its value (null when the cell was).
    pub metrics: HashMap<String, (DateTime<Utc>, Option<f64>)>,
}

impl Signals {
    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(|(_, v)| *v)
    }

    fn newest(&self) -> Option<DateTime<Utc>> {
        self.availability
            .as_ref()
            .map(|a| a.time)
            .into_iter()
            .chain(self.metrics.values().map(|(t, _)| *t))
            .max()
    }
}

/// The telemetry of the fleet, by resource id (lower-case) and, for sources without one, by host
/// name (lower-case).
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Sources that sent their resource id.
    pub by_id: HashMap<String, Signals>,
    /// Sources that did not.
    pub by_host: HashMap<String, Signals>,
    /// Rows that could not be read (no signal, time or source), ignored.
    pub bad_rows: usize,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    let x = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// Reads the query's answer; an answer without the columns it needs is an error for every VM.
pub fn read(table: &Table) -> Result<Telemetry, String> {
    let col = |n: &str| table.column(n);
    let need = |n: &str| {
        col(n).ok_or_else(|| format!("the telemetry answer has no column {n:?}: it is unusable"))
    };
    let (signal, time) = (need("signal")?, need("time")?);
    let (id, host) = (col("resource_id"), col("host"));
    if id.is_none() && host.is_none() {
        return Err("the telemetry answer has neither a resource_id nor a host column".into());
    }
    let (value, status, service, message) =
        (col("value"), col("status"), col("service"), col("text"));
    let mut t = Telemetry::default();
    for row in &table.rows {
        let cell = |i: Option<usize>| i.and_then(|i| row.get(i));
        let when = text(cell(Some(time)))
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|d| d.to_utc());
        let (Some(sig), Some(when)) = (text(cell(Some(signal))), when) else {
            t.bad_rows += 1;
            continue;
        };
        let rid = text(cell(id)).map(|s| s.to_ascii_lowercase());
        let h = text(cell(host)).unwrap_or_default();
        let entry = match rid {
            Some(rid) => t.by_id.entry(rid).or_default(),
            None if !h.is_empty() => t.by_host.entry(h.to_ascii_lowercase()).or_default(),
            None => {
                t.bad_rows += 1;
                continue;
            }
        };
        if entry.host.is_empty() {
            entry.host = h;
        }
        if sig == "availability" {
            if entry.availability.as_ref().is_none_or(|a| a.time < when) {
                entry.availability = Some(Availability {
                    time: when,
                    status: text(cell(status)),
                    service: text(cell(service)),
                    text: text(cell(message)),
                });
            }
        } else if sig.starts_with("health.")
            && entry.metrics.get(&sig).is_none_or(|(t0, _)| *t0 < when)
        {
            entry.metrics.insert(sig, (when, number(cell(value))));
        }
    }
    Ok(t)
}

/// `14 min`, `3 h`, `2 days`.
pub fn age_text(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The rows of a join, and what did not fit.
#[derive(Debug, Clone, Default)]
pub struct Joined {
    /// One row per VM of the inventory, in its order.
    pub rows: Vec<VmHealth>,
    /// Telemetry sources that match no listed VM (ignored).
    pub unmatched: usize,
    /// VMs whose telemetry was matched by host name only.
    pub by_name: Vec<String>,
    /// Telemetry sources without a resource id whose host name several listed VMs have.
    pub ambiguous: usize,
}

/// The warning of a row matched by host name.
pub const BY_NAME: &str = "telemetry matched by host name only (the agent sent no resource id: IMDS unreachable, or an older agent)";

/// Joins the inventory with the telemetry (or the reason there is none usable) as of `now`.
pub fn join(
    inventory: &[GraphVm],
    telemetry: Result<&Telemetry, &str>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> Joined {
    let empty = Telemetry::default();
    let tel = telemetry.unwrap_or(&empty);
    // how many listed VMs answer to each host name (name or computer name)
    let mut names: HashMap<String, usize> = HashMap::new();
    for g in inventory {
        let name = g.vm.name.to_ascii_lowercase();
        *names.entry(name.clone()).or_default() += 1;
        if let Some(c) = g.computer_name.as_ref().map(|c| c.to_ascii_lowercase())
            && c != name
        {
            *names.entry(c).or_default() += 1;
        }
    }
    let mut out = Joined::default();
    let mut used_ids = 0usize;
    let mut used_hosts: std::collections::HashSet<&str> = Default::default();
    let mut ambiguous: std::collections::HashSet<&str> = Default::default();
    for g in inventory {
        let mut row = VmHealth::new(&g.vm.name, &g.vm.resource_group(), "none");
        row.location = Some(g.vm.location.clone());
        row.source = Some("telemetry");
        row.resource_id = Some(g.vm.id.clone());
        row.power_state = g.power.as_ref().map(|p| p.code.clone());
        let mut found = tel.by_id.get(&g.vm.id.to_ascii_lowercase());
        if found.is_some() {
            used_ids += 1;
        } else {
            let keys = [
                Some(g.vm.name.to_ascii_lowercase()),
                g.computer_name.as_ref().map(|c| c.to_ascii_lowercase()),
            ];
            for k in keys.into_iter().flatten() {
                if let Some((key, s)) = tel.by_host.get_key_value(&k) {
                    if names.get(&k).copied().unwrap_or(0) > 1 {
                        ambiguous.insert(key.as_str());
                        row.warnings.push(format!(
                            "telemetry from host {} was not used: {} listed VMs have that name and it sent no resource id",
                            s.host, names[&k]
                        ));
                    } else {
                        used_hosts.insert(key.as_str());
                        row.warnings.push(BY_NAME.into());
                        out.by_name.push(g.vm.name.clone());
                        found = Some(s);
                    }
                    break;
                }
            }
        }
        if telemetry.is_ok() {
            row.data_age_seconds = Some(
                found
                    .and_then(|s| s.availability.as_ref())
                    .map(|a| u64::try_from((now - a.time).num_seconds()).unwrap_or(0)),
            );
        }
        judge(&mut row, g, found, telemetry.err(), now, stale_after);
        out.rows.push(row);
    }
    out.ambiguous = ambiguous.len();
    out.unmatched = (tel.by_id.len() - used_ids)
        + tel
            .by_host
            .keys()
            .filter(|k| !used_hosts.contains(k.as_str()) && !ambiguous.contains(k.as_str()))
            .count();
    out
}

fn judge(
    row: &mut VmHealth,
    g: &GraphVm,
    s: Option<&Signals>,
    unusable: Option<&str>,
    now: DateTime<Utc>,
    stale_after: Duration,
) {
    match &g.power {
        None => {
            return row.fail(
                Status::Unknown,
                "arm",
                "Resource Graph has no power state for this VM".into(),
            );
        }
        Some(p) if !p.is_running() => {
            return row.fail(
                Status::Critical,
                "not-running",
                format!("VM is not running: {}", p.display),
            );
        }
        Some(_) => {}
    }
    if let Some(why) = unusable {
        return row.fail(Status::Unknown, "telemetry", why.to_owned());
    }
    let Some(s) = s else {
        return row.fail(
            Status::Unknown,
            "silent",
            format!("no telemetry in the last {LOOKBACK_TEXT}"),
        );
    };
    let round = |v: f64| v.round();
    row.disk_usage_percent = s
        .metric(DISK)
        .filter(|v| *v >= 0.0)
        .map(|v| round(v) as u64);
    row.memory_usage_percent = s
        .metric(MEMORY)
        .filter(|v| *v >= 0.0)
        .map(|v| round(v) as u64);
    row.heartbeat_age_seconds = s.metric(HEARTBEAT).map(|v| round(v) as i64);
    row.restarts = s
        .metric(CRASHES)
        .filter(|v| *v >= 0.0)
        .map(|v| round(v) as u64);
    let newest = s.newest().unwrap_or(now);
    let age = u64::try_from((now - newest).num_seconds()).unwrap_or(0);
    if Duration::from_secs(age) > stale_after {
        return row.fail(
            Status::Unknown,
            "silent",
            format!("no telemetry for {}", age_text(age)),
        );
    }
    let Some(a) = &s.availability else {
        return row.fail(
            Status::Unknown,
            "telemetry",
            "the telemetry has metrics but no availability result".into(),
        );
    };
    row.service = a.service.clone().or_else(|| {
        s.metric(ACTIVE)
            .map(|v| if v >= 0.5 { "active" } else { "inactive" }.to_owned())
    });
    let word = a.status.as_deref().unwrap_or("");
    let Some(status) = Status::parse(word) else {
        return row.fail(
            Status::Unknown,
            "telemetry",
            if word.is_empty() {
                "the agent's availability result has no status".into()
            } else {
                format!("the agent's telemetry says {word:?}, which is no status")
            },
        );
    };
    row.status = status;
    row.error = None;
    if status != Status::Healthy
        && let Some(t) = a.text.as_ref().filter(|t| t.as_str() != "HEALTHY")
    {
        row.alerts = vec![t.clone()];
        row.reason = Some(t.clone());
    }
}

#[cfg(test)]
mod tests;
