//! The decision core: readings in, status and alerts out. Pure: no I/O, no clock.
//!
//! The checks run in the original monitor's order, which is the order of the alerts: service,
//! crash loop, disk, memory, heartbeat, journal; then the registered checks
//! ([`crate::checks::CHECKS`]), already judged when they ran. The overall status is the worst of the checks with
//! CRITICAL > WARNING > UNKNOWN > HEALTHY: a check that could not be made never hides a real problem
//! found by another, and is never reported as a problem of its own kind.

use crate::{
    checks::{Readings, disk, heartbeat, journal, memory, service},
    config::Config,
};

use crate::health::{Alert, CheckOutcome, Status};

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
    checks.extend(readings.more.iter().cloned());
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
                    ..DiskUsage::default()
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
            more: Vec::new(),
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
            ..DiskUsage::default()
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
            ..DiskUsage::default()
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
