//! Domain types to wire types and back: the only place where the generated protobuf types meet the
//! agent's [`Snapshot`], [`Control`] and [`ControlReply`].
//!
//! Times go on the wire as RFC 3339 strings in UTC; the report's own timestamp keeps its local offset
//! and microseconds, exactly as the JSON report shows it.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use cryptobot_proto::v1 as pb;

use crate::{
    handle::{Control, ControlReply, Event, EventKind, Snapshot},
    health::{CheckOutcome, Status},
    report::DiskEntry,
    systemd::UnitFacts,
};

/// RFC 3339 in UTC with whole seconds, e.g. `2025-12-01T00:15:14Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The wire enum of a status.
pub fn health_status(status: Status) -> pb::HealthStatus {
    match status {
        Status::Healthy => pb::HealthStatus::Healthy,
        Status::Warning => pb::HealthStatus::Warning,
        Status::Critical => pb::HealthStatus::Critical,
        Status::Unknown => pb::HealthStatus::Unknown,
    }
}

/// The wire enum of an event kind.
pub fn event_kind(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Transition => pb::EventKind::Transition,
        EventKind::Restart => pb::EventKind::Restart,
        EventKind::BackoffReset => pb::EventKind::BackoffReset,
        EventKind::Paused => pb::EventKind::Paused,
        EventKind::Resumed => pb::EventKind::Resumed,
        EventKind::Agent => pb::EventKind::Agent,
    }
}

/// The full status message of a snapshot, `report_json` included.
pub fn agent_status(snapshot: &Snapshot) -> pb::AgentStatus {
    let report = &snapshot.report;
    let daemon = &snapshot.daemon;
    pb::AgentStatus {
        seq: snapshot.seq,
        timestamp: report
            .timestamp
            .to_rfc3339_opts(SecondsFormat::Micros, false),
        status: health_status(report.status).into(),
        service_active: report.service_active,
        service_running: report.service_running,
        crash_count: report.crash_count,
        disk_usage_percent: report.disk_usage_percent.map(u32::from),
        memory_usage_percent: report.memory_usage_percent.map(u32::from),
        heartbeat_age_seconds: report.heartbeat_age_seconds,
        alerts: report.alerts.clone(),
        checks: report.checks.iter().map(check).collect(),
        unit: report.unit.as_ref().map(unit),
        disks: report.disks.iter().map(disk).collect(),
        agent: Some(pb::AgentInfo {
            version: report.agent.version.clone(),
            hostname: report.agent.hostname.clone(),
        }),
        serving: snapshot.is_serving(),
        started_at: time(daemon.started_at),
        restart_enabled: daemon.restart_enabled,
        backoff: Some(pb::Backoff {
            restart_count: daemon.backoff.restart_count,
            last_restart_time: daemon.backoff.last_restart_time.map(time),
            backoff_seconds: daemon.backoff.backoff_seconds,
            next_restart_at: daemon.backoff.next_restart_at.map(time),
        }),
        pause: daemon.pause.as_ref().map(|p| pb::Pause {
            since: time(p.since),
            until: p.until.map(time),
        }),
        events: daemon.events.iter().map(event).collect(),
        report_json: snapshot.to_json(),
    }
}

fn check(c: &CheckOutcome) -> pb::Check {
    pb::Check {
        name: c.name.clone(),
        status: health_status(c.status).into(),
        value: c.value.clone(),
        threshold: c.threshold.clone(),
        alert: c.alert.as_ref().map(|a| pb::Alert {
            kind: a.kind.clone(),
            text: a.text.clone(),
        }),
    }
}

fn unit(u: &UnitFacts) -> pb::Unit {
    pb::Unit {
        name: u.name.clone(),
        load_state: u.load_state.clone(),
        active_state: u.active_state.clone(),
        sub_state: u.sub_state.clone(),
        result: u.result.clone(),
        n_restarts: u.n_restarts,
        main_pid: u.main_pid,
        active_enter_timestamp: u.active_enter_timestamp.map(time),
        invocation_id: u.invocation_id.clone(),
    }
}

fn disk(d: &DiskEntry) -> pb::Disk {
    pb::Disk {
        mount: d.mount.clone(),
        percent: d.usage.map(|u| u32::from(u.percent)),
        used_bytes: d.usage.map(|u| u.used_bytes),
        total_bytes: d.usage.map(|u| u.total_bytes),
        error: d.error.clone(),
        full_in_seconds: d.forecast,
    }
}

/// One event on the wire.
pub fn event(e: &Event) -> pb::Event {
    pb::Event {
        time: time(e.time),
        kind: event_kind(e.kind).into(),
        message: e.message.clone(),
        outcome: e.outcome.clone(),
        delay_seconds: e.delay_seconds,
    }
}

/// The newest `limit` events of a snapshot (all of them for `None` or 0), oldest first.
pub fn events(snapshot: &Snapshot, limit: Option<u32>) -> pb::GetEventsResponse {
    let all = &snapshot.daemon.events;
    let skip = match limit {
        Some(n) if n > 0 => all.len().saturating_sub(n as usize),
        _ => 0,
    };
    pb::GetEventsResponse {
        events: all[skip..].iter().map(event).collect(),
    }
}

/// The longest pause a request may ask for (a longer one is almost certainly a mistake; pause
/// without a duration to pause until resumed).
pub const MAX_PAUSE: Duration = Duration::from_secs(366 * 24 * 3600);

/// The control a `Pause` request asks for: 0 or no duration means until resumed; the error says
/// why the duration is not acceptable.
pub fn pause_control(request: &pb::PauseRequest) -> Result<Control, String> {
    let duration = request
        .duration_seconds
        .filter(|&s| s > 0)
        .map(Duration::from_secs);
    if duration.is_some_and(|d| d > MAX_PAUSE) {
        return Err(format!(
            "a pause may last at most {} seconds; pause without a duration to pause until resumed",
            MAX_PAUSE.as_secs()
        ));
    }
    Ok(Control::Pause { duration })
}

/// An answer the supervisor should not give to this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The supervisor declined, and why.
    #[error("{0}")]
    Refused(String),
    /// The supervisor answered something unrelated.
    #[error("unexpected answer from the agent: {0:?}")]
    Unexpected(ControlReply),
}

/// The outcome of a `Restart`: every restart answer is a valid response.
pub fn restart_response(reply: ControlReply) -> Result<pb::RestartResponse, ReplyError> {
    use pb::restart_response::Outcome;
    let outcome = match reply {
        ControlReply::Restarted { message } => Outcome::Restarted(pb::Restarted { message }),
        ControlReply::RestartFailed { message } => {
            Outcome::RestartFailed(pb::RestartFailed { message })
        }
        ControlReply::Deferred { until } => Outcome::Deferred(pb::Deferred { until: time(until) }),
        ControlReply::Refused { reason } => Outcome::Refused(pb::Refused { reason }),
        other => return Err(ReplyError::Unexpected(other)),
    };
    Ok(pb::RestartResponse {
        outcome: Some(outcome),
    })
}

/// The answer to a `Pause`.
pub fn pause_response(reply: ControlReply) -> Result<pb::PauseResponse, ReplyError> {
    match reply {
        ControlReply::Paused { until } => Ok(pb::PauseResponse {
            until: until.map(time),
        }),
        other => Err(not_done(other)),
    }
}

/// The answer to a `Resume`.
pub fn resume_response(reply: ControlReply) -> Result<pb::ResumeResponse, ReplyError> {
    match reply {
        ControlReply::Resumed => Ok(pb::ResumeResponse {}),
        other => Err(not_done(other)),
    }
}

/// The answer to a `ResetBackoff`.
pub fn reset_backoff_response(reply: ControlReply) -> Result<pb::ResetBackoffResponse, ReplyError> {
    match reply {
        ControlReply::BackoffReset => Ok(pb::ResetBackoffResponse {}),
        other => Err(not_done(other)),
    }
}

fn not_done(reply: ControlReply) -> ReplyError {
    match reply {
        ControlReply::Refused { reason } => ReplyError::Refused(reason),
        other => ReplyError::Unexpected(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{daemon::testing::sample_snapshot, handle::PauseView};

    #[test]
    fn status_mirrors_the_report() {
        let snap = sample_snapshot(Status::Critical);
        let s = agent_status(&snap);
        assert_eq!(s.status(), pb::HealthStatus::Critical);
        assert_eq!(s.service_active, Some(false));
        assert_eq!(s.service_running, Some(false));
        assert_eq!(s.disk_usage_percent, Some(41));
        assert_eq!(s.memory_usage_percent, Some(22));
        assert_eq!(s.heartbeat_age_seconds, Some(3));
        assert_eq!(s.alerts, snap.report.alerts);
        assert!(!s.alerts.is_empty());
        assert!(!s.serving);
        let service = s.checks.iter().find(|c| c.name == "service").unwrap();
        assert_eq!(service.status(), pb::HealthStatus::Critical);
        assert_eq!(
            service.alert.as_ref().map(|a| a.text.as_str()),
            Some(snap.report.alerts[0].as_str())
        );
        assert_eq!(s.unit.as_ref().unwrap().active_state, "failed");
        assert_eq!(s.report_json, snap.to_json());
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[1].kind(), pb::EventKind::Restart);
        assert_eq!(s.events[1].delay_seconds, Some(10));
        assert_eq!(s.started_at, "2025-11-30T20:15:14Z");
        assert!(s.pause.is_none());
    }

    #[test]
    fn unknown_values_stay_unset() {
        let s = agent_status(&sample_snapshot(Status::Unknown));
        assert_eq!(s.status(), pb::HealthStatus::Unknown);
        assert_eq!(s.service_active, None);
        assert_eq!(s.service_running, None);
        assert_eq!(s.crash_count, None);
        assert!(s.unit.is_none());
    }

    #[test]
    fn pause_state_and_duration() {
        let mut snap = sample_snapshot(Status::Healthy);
        let since = snap.daemon.started_at;
        snap.daemon.pause = Some(PauseView { since, until: None });
        let s = agent_status(&snap);
        assert_eq!(s.pause.as_ref().unwrap().until, None);
        let pause = |s| {
            pause_control(&pb::PauseRequest {
                duration_seconds: s,
            })
        };
        assert_eq!(pause(None), Ok(Control::Pause { duration: None }));
        assert_eq!(pause(Some(0)), Ok(Control::Pause { duration: None }));
        assert_eq!(
            pause(Some(3600)),
            Ok(Control::Pause {
                duration: Some(Duration::from_secs(3600))
            })
        );
        assert!(pause(Some(u64::MAX)).unwrap_err().contains("at most"));
    }

    #[test]
    fn events_limit_keeps_the_newest() {
        let snap = sample_snapshot(Status::Healthy);
        assert_eq!(events(&snap, None).events.len(), 2);
        assert_eq!(events(&snap, Some(0)).events.len(), 2);
        let last = events(&snap, Some(1)).events;
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].kind(), pb::EventKind::Restart);
    }

    #[test]
    fn replies_map_to_outcomes_or_errors() {
        use pb::restart_response::Outcome;
        let until = DateTime::from_timestamp(1_764_544_514, 0).unwrap();
        let r = restart_response(ControlReply::Deferred { until }).unwrap();
        assert_eq!(
            r.outcome,
            Some(Outcome::Deferred(pb::Deferred {
                until: "2025-11-30T23:15:14Z".into()
            }))
        );
        assert!(matches!(
            restart_response(ControlReply::Resumed),
            Err(ReplyError::Unexpected(_))
        ));
        assert_eq!(
            pause_response(ControlReply::Refused {
                reason: "already paused".into()
            }),
            Err(ReplyError::Refused("already paused".into()))
        );
        assert_eq!(
            pause_response(ControlReply::Paused { until: Some(until) })
                .unwrap()
                .until
                .as_deref(),
            Some("2025-11-30T23:15:14Z")
        );
    }
}
