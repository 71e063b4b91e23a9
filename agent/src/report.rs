//! The health report every interface shows: `check --json`, `/metrics`, gRPC and `cryptoctl`.
//!
//! The first ten keys are the original monitor's, in its order and with its types; values that could
//! not be read are `null` rather than a made-up 0. More detail follows in later keys.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, Local, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::{
    checks::{
        Readings, disk::DiskUsage, heartbeat::Heartbeat, journal::JournalErrors,
        memory::MemoryUsage,
    },
    config::Config,
    evaluate::{Evaluation, evaluate},
    health::{CheckOutcome, Status},
    systemd::UnitFacts,
};

/// One health report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the probes ran, RFC 3339 with the local offset.
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: DateTime<FixedOffset>,
    /// Overall status.
    pub status: Status,
    /// The unit is active (null: unknown).
    pub service_active: Option<bool>,
    /// The unit's main process runs (null: unknown).
    pub service_running: Option<bool>,
    /// Restarts counted for the crash-loop check.
    pub crash_count: Option<u32>,
    /// The fullest watched file system's Use%.
    pub disk_usage_percent: Option<u8>,
    /// Memory used, percent.
    pub memory_usage_percent: Option<u8>,
    /// Seconds since the last heartbeat; -1 when there is no heartbeat file.
    pub heartbeat_age_seconds: Option<i64>,
    /// Alert texts, in order.
    pub alerts: Vec<String>,
    /// The original's metrics object.
    pub metrics: Metrics,
    /// Every check with its value and threshold.
    pub checks: Vec<CheckOutcome>,
    /// What systemd says about the unit.
    pub unit: Option<UnitFacts>,
    /// Every watched mount point.
    pub disks: Vec<DiskEntry>,
    /// Memory details.
    pub memory: Option<MemoryUsage>,
    /// Heartbeat details.
    pub heartbeat: Option<Heartbeat>,
    /// Journal window and the newest error messages.
    pub journal: Option<JournalErrors>,
    /// Who made the report.
    pub agent: AgentInfo,
}

/// The original's `metrics` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct Metrics {
    pub disk_usage: Option<u8>,
    pub memory_usage: Option<u8>,
    pub heartbeat_age: Option<i64>,
    pub crash_count: Option<u32>,
}

/// One watched mount point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskEntry {
    /// Mount point.
    pub mount: String,
    /// Usage, when it could be read.
    pub usage: Option<DiskUsage>,
    /// Why not, otherwise.
    pub error: Option<String>,
    /// Seconds until the mount is full at its recent fill rate; null without a forecast (too
    /// little history, below the floor, not filling, or a one-shot check).
    pub forecast: Option<u64>,
}

/// The agent that made a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// Agent version.
    pub version: String,
    /// Host name of the machine.
    pub hostname: String,
}

impl AgentInfo {
    /// This agent on this machine.
    pub fn current() -> AgentInfo {
        AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        }
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, false))
}

impl Report {
    /// Judges `readings` against `config` and builds the report: the one way every caller (the
    /// one-shot check, `alert test`, the daemon) turns readings into a report. `crash_count` is
    /// what the crash-loop check judges; `own` are the agent's own outcomes (state that cannot be
    /// saved), judged after the checks.
    pub fn judge(
        readings: &Readings,
        config: &Config,
        crash_count: Option<u32>,
        own: impl IntoIterator<Item = CheckOutcome>,
        agent: AgentInfo,
    ) -> Report {
        let mut evaluation = evaluate(readings, config, crash_count);
        for outcome in own {
            evaluation.push(outcome);
        }
        Report::new(readings, &evaluation, crash_count, agent)
    }

    /// Builds the report of one evaluation; `crash_count` is what the crash-loop check judged.
    pub fn new(
        readings: &Readings,
        evaluation: &Evaluation,
        crash_count: Option<u32>,
        agent: AgentInfo,
    ) -> Report {
        let unit = readings.service.as_ref().ok().cloned();
        let disk_usage_percent = readings
            .disks
            .iter()
            .map(|(_, r)| r.as_ref().ok().map(|u| u.percent))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        let memory = readings.memory.as_ref().ok().copied();
        let heartbeat = readings.heartbeat.as_ref().ok().cloned();
        let heartbeat_age_seconds = heartbeat.as_ref().map(|h| match h {
            Heartbeat::Missing => -1,
            Heartbeat::Found { age_seconds, .. } => *age_seconds,
        });
        let metrics = Metrics {
            disk_usage: disk_usage_percent,
            memory_usage: memory.map(|m| m.percent),
            heartbeat_age: heartbeat_age_seconds,
            crash_count,
        };
        Report {
            timestamp: local(readings.taken_at),
            status: evaluation.status,
            service_active: unit.as_ref().map(UnitFacts::is_active),
            service_running: unit.as_ref().map(UnitFacts::is_running),
            crash_count,
            disk_usage_percent,
            memory_usage_percent: metrics.memory_usage,
            heartbeat_age_seconds,
            alerts: evaluation.alerts().map(|a| a.text.clone()).collect(),
            metrics,
            checks: evaluation.checks.clone(),
            unit,
            disks: readings
                .disks
                .iter()
                .map(|(m, r)| DiskEntry {
                    mount: m.display().to_string(),
                    usage: r.as_ref().ok().copied(),
                    error: r.as_ref().err().map(|e| e.message.clone()),
                    forecast: r
                        .as_ref()
                        .ok()
                        .and_then(|u| u.forecast?.full_in)
                        .map(|d| d.as_secs()),
                })
                .collect(),
            memory,
            heartbeat,
            journal: readings.journal.as_ref().ok().cloned(),
            agent,
        }
    }

    /// Pretty JSON, two-space indented like the original.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The original's text layout.
    pub fn to_text(&self) -> String {
        TextSummary {
            timestamp: &self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, false),
            status: self.status.as_str(),
            service_active: self.service_active,
            service_running: self.service_running,
            crash_count: self.crash_count.map(u64::from),
            disk_usage_percent: self.disk_usage_percent.map(u64::from),
            memory_usage_percent: self.memory_usage_percent.map(u64::from),
            heartbeat_age_seconds: self.heartbeat_age_seconds,
            alerts: &self.alerts,
        }
        .render()
    }
}

/// The fields of the original's text layout, from a [`Report`] or from the agent's gRPC status
/// (so `check` and `status` print the same lines from one renderer).
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct TextSummary<'a> {
    pub timestamp: &'a str,
    pub status: &'a str,
    pub service_active: Option<bool>,
    pub service_running: Option<bool>,
    pub crash_count: Option<u64>,
    pub disk_usage_percent: Option<u64>,
    pub memory_usage_percent: Option<u64>,
    pub heartbeat_age_seconds: Option<i64>,
    pub alerts: &'a [String],
}

impl TextSummary<'_> {
    /// The layout: header, 60 `=`, one line per value (`unknown` for a value not read), alerts.
    pub fn render(&self) -> String {
        fn or_unknown<T: std::fmt::Display>(v: Option<T>, suffix: &str) -> String {
            v.map_or_else(|| "unknown".to_owned(), |v| format!("{v}{suffix}"))
        }
        let py_bool = |b: Option<bool>| match b {
            Some(true) => "True",
            Some(false) => "False",
            None => "unknown",
        };
        let mut out = String::new();
        let _ = writeln!(out, "\nHealth Check Results ({})", self.timestamp);
        let _ = writeln!(out, "{}", "=".repeat(60));
        let _ = writeln!(out, "Overall Status: {}", self.status);
        let _ = writeln!(out, "Service Active: {}", py_bool(self.service_active));
        let _ = writeln!(out, "Service Running: {}", py_bool(self.service_running));
        let _ = writeln!(out, "Crash Count: {}", or_unknown(self.crash_count, ""));
        let _ = writeln!(
            out,
            "Disk Usage: {}",
            or_unknown(self.disk_usage_percent, "%")
        );
        let _ = writeln!(
            out,
            "Memory Usage: {}",
            or_unknown(self.memory_usage_percent, "%")
        );
        let _ = writeln!(
            out,
            "Heartbeat Age: {}",
            or_unknown(self.heartbeat_age_seconds, "s")
        );
        if self.alerts.is_empty() {
            let _ = writeln!(out, "\n✅ No alerts");
        } else {
            let _ = writeln!(out, "\nAlerts:");
            for a in self.alerts {
                let _ = writeln!(out, "  • {a}");
            }
        }
        out
    }
}

/// `t` in the machine's local time zone.
pub fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&Local).fixed_offset()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{checks::ProbeError, config::Config, evaluate::evaluate};

    fn readings() -> Readings {
        Readings {
            taken_at: DateTime::from_timestamp(1_764_544_514, 545_834_000).unwrap(),
            service: Err(ProbeError::new("cannot connect to the system bus")),
            disks: vec![(
                "/".into(),
                Ok(DiskUsage {
                    percent: 16,
                    used_bytes: 16,
                    total_bytes: 100,
                    ..DiskUsage::default()
                }),
            )],
            memory: Ok(MemoryUsage {
                percent: 3,
                total_kib: 100,
                available_kib: 97,
            }),
            heartbeat: Ok(Heartbeat::Missing),
            journal: Err(ProbeError::new(
                "cannot run journalctl: No such file or directory",
            )),
            more: Vec::new(),
        }
    }

    fn report() -> Report {
        let r = readings();
        let e = evaluate(&r, &Config::default(), None);
        Report::new(
            &r,
            &e,
            None,
            AgentInfo {
                version: "0.1.0".into(),
                hostname: "vm1".into(),
            },
        )
    }

    #[test]
    fn json_keeps_the_original_keys_first_and_in_order() {
        let json = report().to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            &keys[..10],
            &[
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
        let metric_keys: Vec<&str> = v["metrics"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            metric_keys,
            ["disk_usage", "memory_usage", "heartbeat_age", "crash_count"]
        );
        assert_eq!(v["status"], "WARNING");
        assert_eq!(v["service_active"], serde_json::Value::Null);
        assert_eq!(v["heartbeat_age_seconds"], -1);
        assert_eq!(v["disk_usage_percent"], 16);
        let ts = v["timestamp"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(
            ts.ends_with("+00:00") || ts.contains('+') || ts.rfind('-').unwrap() > 10,
            "{ts} has an offset"
        );
    }

    #[test]
    fn text_follows_the_original_layout() {
        let text = report().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "");
        assert!(lines[1].starts_with("Health Check Results ("));
        assert_eq!(lines[2], "=".repeat(60));
        assert_eq!(lines[3], "Overall Status: WARNING");
        assert_eq!(lines[4], "Service Active: unknown");
        assert_eq!(lines[9], "Heartbeat Age: -1s");
        assert_eq!(lines[11], "Alerts:");
        assert_eq!(
            lines[12],
            "  • Service state unknown: cannot connect to the system bus"
        );
    }
}
