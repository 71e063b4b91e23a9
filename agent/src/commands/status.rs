//! `cryptobot-agent status [--json]`: the running agent's latest report over its unix socket.
//!
//! With `--json` it prints the agent's own JSON as is. Otherwise it prints the report in the layout
//! of `check` (the same lines, built from the typed fields), then the daemon's restart backoff,
//! pause and last few events. The exit code is the report's status like `check`'s.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use cryptobot_proto::v1 as pb;

use crate::{
    cli::StatusArgs,
    client::{Client, ClientError},
    report::TextSummary,
};

/// How many of the newest events the text shows.
const EVENTS_SHOWN: usize = 5;

pub(super) async fn run(socket: &Path, args: &StatusArgs) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket).await?;
    let status = client
        .rpc()
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|e| client.error(e))?
        .into_inner();
    if args.json {
        println!("{}", status.report_json);
    } else {
        print!("{}", to_text(&status));
    }
    Ok(ExitCode::from(exit_code(status.status())))
}

/// Nagios plugin convention, like `check`: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
pub fn exit_code(status: pb::HealthStatus) -> u8 {
    match status {
        pb::HealthStatus::Healthy => 0,
        pb::HealthStatus::Warning => 1,
        pb::HealthStatus::Critical => 2,
        pb::HealthStatus::Unknown | pb::HealthStatus::Unspecified => 3,
    }
}

fn status_word(status: pb::HealthStatus) -> &'static str {
    match status {
        pb::HealthStatus::Healthy => "HEALTHY",
        pb::HealthStatus::Warning => "WARNING",
        pb::HealthStatus::Critical => "CRITICAL",
        pb::HealthStatus::Unknown | pb::HealthStatus::Unspecified => "UNKNOWN",
    }
}

fn event_word(kind: pb::EventKind) -> &'static str {
    match kind {
        pb::EventKind::Transition => "transition",
        pb::EventKind::Restart => "restart",
        pb::EventKind::BackoffReset => "backoff reset",
        pb::EventKind::Paused => "paused",
        pb::EventKind::Resumed => "resumed",
        pb::EventKind::Agent => "agent",
        pb::EventKind::Unspecified => "event",
    }
}

/// The text of `status`: `check`'s layout, then the daemon's state.
pub fn to_text(s: &pb::AgentStatus) -> String {
    let mut out = TextSummary {
        timestamp: &s.timestamp,
        status: status_word(s.status()),
        service_active: s.service_active,
        service_running: s.service_running,
        crash_count: s.crash_count.map(u64::from),
        disk_usage_percent: s.disk_usage_percent.map(u64::from),
        memory_usage_percent: s.memory_usage_percent.map(u64::from),
        heartbeat_age_seconds: s.heartbeat_age_seconds,
        alerts: &s.alerts,
    }
    .render();

    let _ = writeln!(out, "\nAgent");
    let _ = writeln!(out, "{}", "-".repeat(60));
    let _ = writeln!(out, "Started: {}", s.started_at);
    let _ = writeln!(
        out,
        "Restarts: {}",
        if s.restart_enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    if let Some(b) = &s.backoff {
        let _ = writeln!(
            out,
            "Backoff: {} restart(s) in this episode, next delay {}s",
            b.restart_count, b.backoff_seconds
        );
        if let Some(t) = &b.last_restart_time {
            let _ = writeln!(out, "Last Restart: {t}");
        }
        if let Some(t) = &b.next_restart_at {
            let _ = writeln!(out, "Next Restart: not before {t}");
        }
    }
    match &s.pause {
        None => {
            let _ = writeln!(out, "Paused: no");
        }
        Some(p) => {
            let until = p.until.as_deref().unwrap_or("resumed");
            let _ = writeln!(out, "Paused: since {}, until {until}", p.since);
        }
    }
    let shown = &s.events[s.events.len().saturating_sub(EVENTS_SHOWN)..];
    if shown.is_empty() {
        let _ = writeln!(out, "\nNo recent events");
    } else {
        let _ = writeln!(out, "\nRecent Events:");
        for e in shown {
            let mut line = format!("  {} {}: {}", e.time, event_word(e.kind()), e.message);
            match (&e.outcome, e.delay_seconds) {
                (Some(o), Some(d)) => {
                    let _ = write!(line, " ({o}, after {d}s)");
                }
                (Some(o), None) => {
                    let _ = write!(line, " ({o})");
                }
                (None, Some(d)) => {
                    let _ = write!(line, " (after {d}s)");
                }
                (None, None) => {}
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        daemon::testing::sample_snapshot, grpc::convert, handle::PauseView, health::Status,
    };

    #[test]
    fn text_starts_with_the_check_layout() {
        for status in [
            Status::Healthy,
            Status::Warning,
            Status::Critical,
            Status::Unknown,
        ] {
            let snap = sample_snapshot(status);
            let text = to_text(&convert::agent_status(&snap));
            let report = snap.report.to_text();
            assert!(
                text.starts_with(&report),
                "{status}:\n{text}\n--- check prints ---\n{report}"
            );
            assert_eq!(
                exit_code(convert::health_status(status)),
                status.exit_code()
            );
        }
    }

    #[test]
    fn text_shows_backoff_pause_and_events() {
        let mut snap = sample_snapshot(Status::Healthy);
        let since = snap.daemon.started_at;
        snap.daemon.pause = Some(PauseView { since, until: None });
        let text = to_text(&convert::agent_status(&snap));
        assert!(
            text.contains("Backoff: 1 restart(s) in this episode, next delay 20s"),
            "{text}"
        );
        assert!(
            text.contains("Paused: since 2025-11-30T20:15:14Z, until resumed"),
            "{text}"
        );
        assert!(
            text.contains("restart: worker failed (result: signal) (restarted, after 10s)"),
            "{text}"
        );
        assert!(
            text.contains("transition: HEALTHY -> CRITICAL: Service is not active"),
            "{text}"
        );
    }
}
