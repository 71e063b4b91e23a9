//! The decision core: readings in, status and alerts out. Pure: no I/O, no clock.
//!
//! The checks run in the original monitor's order, which is the order of the alerts: service,
//! crash loop, disk, memory, heartbeat, journal. The overall status is the worst of the checks with
//! CRITICAL > WARNING > UNKNOWN > HEALTHY: a check that could not be made never hides a real problem
//! found by another, and is never reported as a problem of its own kind.

use serde::Serialize;

use crate::{
    checks::{Readings, disk, heartbeat, journal, memory, service},
    config::Config,
};

/// Overall or per-check health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Everything checked is fine.
    Healthy,
    /// Something could not be checked, and nothing else is wrong.
    Unknown,
    /// Something needs attention.
    Warning,
    /// The worker is down or the disk is full.
    Critical,
}

impl Status {
    fn rank(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The upper-case word of the original reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "HEALTHY",
            Status::Unknown => "UNKNOWN",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
        }
    }

    /// Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: a stable kind (for deduplication; it carries no numbers) and the text people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// e.g. `disk_high`, `crash_loop`, `service_down`.
    pub kind: String,
    /// e.g. `Disk usage high: 81%`.
    pub text: String,
}

impl Alert {
    /// An alert of this kind with this text.
    pub fn new(kind: &str, text: impl Into<String>) -> Alert {
        Alert {
            kind: kind.to_owned(),
            text: text.into(),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// `service`, `restarts`, `disk:/`, `memory`, `heartbeat`, `journal`.
    pub name: String,
    /// This check's status.
    pub status: Status,
    /// The reading, for people (`41%`, `3s`, `active (running)`); absent when unknown.
    pub value: Option<String>,
    /// What the reading is compared with.
    pub threshold: Option<String>,
    /// The alert this check raised, if any.
    pub alert: Option<Alert>,
}

impl CheckOutcome {
    /// A healthy outcome with no value yet.
    pub fn new(name: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            name: name.into(),
            status: Status::Healthy,
            value: None,
            threshold: None,
            alert: None,
        }
    }

    /// Sets the reading.
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets the threshold description.
    pub fn threshold(mut self, threshold: impl Into<String>) -> Self {
        self.threshold = Some(threshold.into());
        self
    }

    /// Raises an alert with this status.
    pub fn alert(mut self, status: Status, alert: Alert) -> Self {
        self.status = status;
        self.alert = Some(alert);
        self
    }

    /// The check could not be made.
    pub fn unknown(self, kind: &str, text: String) -> Self {
        self.alert(Status::Unknown, Alert::new(kind, text))
    }
}

/// Every check's outcome and the overall status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Worst of the checks.
    pub status: Status,
    /// In alert order.
    pub checks: Vec<CheckOutcome>,
}

impl Evaluation {
    /// Adds an outcome of the agent's own (after the checks), updating the overall status.
    pub fn push(&mut self, outcome: CheckOutcome) {
        self.status = self.status.worst(outcome.status);
        self.checks.push(outcome);
    }

    /// The alerts, in order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.checks.iter().filter_map(|c| c.alert.as_ref())
    }
}

/// Evaluates `readings` against the thresholds in `config`. `restarts` is the crash counter to judge
/// (systemd's `NRestarts` for a one-shot check).
pub fn evaluate(readings: &Readings, config: &Config, restarts: Option<u32>) -> Evaluation {
    let mut checks = vec![
        service::assess(&readings.service),
        service::assess_restarts(restarts, config.crash_loop_restarts),
    ];
    checks.extend(
        readings
            .disks
            .iter()
            .map(|(mount, r)| disk::assess(mount, r, &config.disk)),
    );
    checks.push(memory::assess(
        &readings.memory,
        config.memory_warning_percent,
    ));
    checks.push(heartbeat::assess(
        &readings.heartbeat,
        config.heartbeat.stale_after.as_secs(),
    ));
    checks.push(journal::assess(&readings.journal));
    let status = checks
        .iter()
        .fold(Status::Healthy, |s, c| s.worst(c.status));
    Evaluation { status, checks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        checks::{
            ProbeError, disk::DiskUsage, heartbeat::Heartbeat, journal::JournalErrors,
            memory::MemoryUsage,
        },
        systemd::UnitFacts,
    };
    use chrono::{DateTime, Utc};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn healthy() -> Readings {
        Readings {
            taken_at: t(1000),
            service: Ok(UnitFacts {
                name: "faucet_worker.service".into(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                result: "success".into(),
                n_restarts: 0,
                main_pid: 10,
                exec_main_code: 0,
                exec_main_status: 0,
                active_enter_timestamp: Some(t(1)),
                inactive_exit_timestamp: Some(t(1)),
                invocation_id: "ab".into(),
            }),
            disks: vec![(
                "/".into(),
                Ok(DiskUsage {
                    percent: 41,
                    used_bytes: 1,
                    total_bytes: 2,
                }),
            )],
            memory: Ok(MemoryUsage {
                percent: 22,
                total_kib: 100,
                available_kib: 78,
            }),
            heartbeat: Ok(Heartbeat::Found {
                path: "/tmp/cryptobot_heartbeat".into(),
                written_at: t(997),
                age_seconds: 3,
                source: crate::checks::heartbeat::TimeSource::Content,
            }),
            journal: Ok(JournalErrors::new(t(900), t(1000), vec![])),
        }
    }

    fn texts(e: &Evaluation) -> Vec<&str> {
        e.alerts().map(|a| a.text.as_str()).collect()
    }

    #[test]
    fn healthy_readings_are_healthy() {
        let e = evaluate(&healthy(), &Config::default(), Some(0));
        assert_eq!(e.status, Status::Healthy);
        assert!(texts(&e).is_empty());
    }

    #[test]
    fn precedence_critical_warning_unknown() {
        let cfg = Config::default();
        let mut r = healthy();
        r.memory = Err(ProbeError::new("timed out after 2s"));
        assert_eq!(evaluate(&r, &cfg, Some(0)).status, Status::Unknown);
        r.heartbeat = Ok(Heartbeat::Missing);
        assert_eq!(evaluate(&r, &cfg, Some(0)).status, Status::Warning);
        r.disks[0].1 = Ok(DiskUsage {
            percent: 93,
            used_bytes: 1,
            total_bytes: 1,
        });
        let e = evaluate(&r, &cfg, Some(0));
        assert_eq!(e.status, Status::Critical);
        assert_eq!(
            texts(&e),
            vec![
                "Disk usage critical: 93%",
                "Memory usage unknown: timed out after 2s",
                "No heartbeat file found"
            ]
        );
    }

    #[test]
    fn alerts_follow_the_original_order() {
        let cfg = Config::default();
        let mut r = healthy();
        if let Ok(f) = &mut r.service {
            f.active_state = "failed".into();
            f.sub_state = "failed".into();
        }
        r.disks[0].1 = Ok(DiskUsage {
            percent: 85,
            used_bytes: 1,
            total_bytes: 1,
        });
        r.memory = Ok(MemoryUsage {
            percent: 95,
            total_kib: 1,
            available_kib: 0,
        });
        let e = evaluate(&r, &cfg, Some(7));
        assert_eq!(
            texts(&e),
            vec![
                "Service is not active",
                "Service has restarted 7 times - possible crash loop",
                "Disk usage high: 85%",
                "Memory usage high: 95%",
            ]
        );
        assert_eq!(e.status, Status::Critical);
    }

    #[test]
    fn unreachable_systemd_alone_is_unknown() {
        let mut r = healthy();
        r.service = Err(ProbeError::new("cannot connect to the system bus"));
        let e = evaluate(&r, &Config::default(), None);
        assert_eq!(e.status, Status::Unknown);
        assert_eq!(
            texts(&e),
            vec!["Service state unknown: cannot connect to the system bus"]
        );
    }

    #[test]
    fn exit_codes_follow_nagios() {
        let codes: Vec<u8> = [
            Status::Healthy,
            Status::Warning,
            Status::Critical,
            Status::Unknown,
        ]
        .iter()
        .map(|s| s.exit_code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3]);
    }
}
