//! Sample snapshots for the front ends' tests.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{BackoffView, DaemonState, Event, EventKind, Sample, Snapshot};
use crate::{
    checks::{
        ProbeError, Readings,
        disk::DiskUsage,
        heartbeat::{Heartbeat, TimeSource},
        journal::JournalErrors,
        memory::MemoryUsage,
    },
    config::Config,
    health::Status,
    report::{AgentInfo, Report},
    systemd::UnitFacts,
};

/// A snapshot with the given overall status (HEALTHY, WARNING with a stale heartbeat, CRITICAL with
/// the worker down, UNKNOWN with systemd unreachable), a few events and an hour of chart samples.
pub fn sample_snapshot(status: Status) -> Snapshot {
    let now = DateTime::from_timestamp(1_764_544_514, 0).unwrap_or_else(Utc::now);
    let mut facts = UnitFacts {
        name: "faucet_worker.service".into(),
        load_state: "loaded".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        result: "success".into(),
        n_restarts: 0,
        main_pid: 4242,
        exec_main_code: 0,
        exec_main_status: 0,
        active_enter_timestamp: Some(now - Duration::hours(2)),
        inactive_exit_timestamp: Some(now - Duration::hours(2)),
        invocation_id: "0123456789abcdef0123456789abcdef".into(),
    };
    let mut age = 3;
    let mut service = Ok(facts.clone());
    match status {
        Status::Healthy => {}
        Status::Warning => age = 412,
        Status::Critical => {
            facts.active_state = "failed".into();
            facts.sub_state = "failed".into();
            facts.result = "signal".into();
            facts.main_pid = 0;
            service = Ok(facts);
        }
        Status::Unknown => service = Err(ProbeError::new("cannot connect to the system bus")),
    }
    let readings = Readings {
        taken_at: now,
        service,
        disks: vec![(
            "/".into(),
            Ok(DiskUsage {
                percent: 41,
                used_bytes: 41 << 30,
                total_bytes: 100 << 30,
                ..DiskUsage::default()
            }),
        )],
        memory: Ok(MemoryUsage {
            percent: 22,
            total_kib: 8_000_000,
            available_kib: 6_240_000,
        }),
        heartbeat: Ok(Heartbeat::Found {
            path: "/tmp/cryptobot_heartbeat".into(),
            written_at: now - Duration::seconds(age),
            age_seconds: age,
            source: TimeSource::Content,
        }),
        journal: Ok(JournalErrors::new(now - Duration::minutes(1), now, vec![])),
        more: Vec::new(),
    };
    let config = Config::default();
    let restarts = readings.service.as_ref().ok().map(|f| f.n_restarts);
    let report = Report::judge(
        &readings,
        &config,
        restarts,
        None,
        AgentInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            hostname: "vm1".into(),
        },
    );
    let history: Vec<Sample> = (0..60)
        .map(|i| Sample {
            time: now - Duration::minutes(60 - i),
            disk_percent: Some(40 + (i % 3) as u8),
            memory_percent: Some(20 + (i % 7) as u8),
        })
        .collect();
    Snapshot {
        seq: 1,
        report,
        daemon: DaemonState {
            started_at: now - Duration::hours(3),
            restart_enabled: true,
            backoff: BackoffView {
                restart_count: 1,
                last_restart_time: Some(now - Duration::minutes(30)),
                backoff_seconds: 20,
                next_restart_at: None,
            },
            pause: None,
            events: vec![
                Event {
                    time: now - Duration::minutes(31),
                    kind: EventKind::Transition,
                    message: "HEALTHY -> CRITICAL: Service is not active".into(),
                    outcome: None,
                    delay_seconds: None,
                },
                Event {
                    time: now - Duration::minutes(30),
                    kind: EventKind::Restart,
                    message: "worker failed (result: signal)".into(),
                    outcome: Some("restarted".into()),
                    delay_seconds: Some(10),
                },
            ],
            sinks: Vec::new(),
        },
        history: Arc::from(history),
    }
}
