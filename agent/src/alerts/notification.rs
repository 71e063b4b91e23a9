//! [`Notification`]: one message for people, built from a policy [`Notice`] and the report it is
//! about, rendered by every sink in its own format. Serialisable, so undelivered notifications
//! survive an agent restart.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{Notice, RestartOutcome};
use crate::{health::Status, report::Report};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A new or changed problem.
    Problem,
    /// Still not healthy.
    Reminder,
    /// Back to healthy.
    Resolved,
    /// Too many status changes.
    Flapping,
    /// The agent restarted the worker.
    Restarted,
    /// The agent's restart failed.
    RestartFailed,
    /// The restart backoff reached its cap.
    BackoffAtCap,
    /// `cryptobot-agent alert test`.
    Test,
}

impl NotificationKind {
    /// The kind as its snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Problem => "problem",
            NotificationKind::Reminder => "reminder",
            NotificationKind::Resolved => "resolved",
            NotificationKind::Flapping => "flapping",
            NotificationKind::Restarted => "restarted",
            NotificationKind::RestartFailed => "restart_failed",
            NotificationKind::BackoffAtCap => "backoff_at_cap",
            NotificationKind::Test => "test",
        }
    }
}

/// The fields every format shows (the original's), as of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The report's timestamp (RFC 3339, local offset).
    pub timestamp: String,
    /// Overall status word.
    pub status: String,
    /// Unit active.
    pub service_active: Option<bool>,
    /// Main process running.
    pub service_running: Option<bool>,
    /// Restarts counted for the crash-loop check.
    pub crash_count: Option<u32>,
    /// Disk usage, percent.
    pub disk_usage_percent: Option<u8>,
    /// Memory usage, percent.
    pub memory_usage_percent: Option<u8>,
    /// Heartbeat age, seconds (-1: no heartbeat file).
    pub heartbeat_age_seconds: Option<i64>,
    /// Alert texts.
    pub alerts: Vec<String>,
}

impl Summary {
    /// The summary of a report.
    pub fn of(report: &Report) -> Summary {
        Summary {
            timestamp: report.timestamp.to_rfc3339_opts(SecondsFormat::Secs, false),
            status: report.status.as_str().to_owned(),
            service_active: report.service_active,
            service_running: report.service_running,
            crash_count: report.crash_count,
            disk_usage_percent: report.disk_usage_percent,
            memory_usage_percent: report.memory_usage_percent,
            heartbeat_age_seconds: report.heartbeat_age_seconds,
            alerts: report.alerts.clone(),
        }
    }

    /// `(label, value)` pairs in the original's order, values as people read them.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let yes_no = |b: Option<bool>| match b {
            Some(true) => "✅ Yes".to_owned(),
            Some(false) => "❌ No".to_owned(),
            None => "unknown".to_owned(),
        };
        let pct = |v: Option<u8>| v.map_or_else(|| "unknown".to_owned(), |v| format!("{v}%"));
        vec![
            ("Timestamp", self.timestamp.clone()),
            ("Service Active", yes_no(self.service_active)),
            ("Service Running", yes_no(self.service_running)),
            (
                "Crash Count",
                self.crash_count
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            ),
            ("Disk Usage", pct(self.disk_usage_percent)),
            ("Memory Usage", pct(self.memory_usage_percent)),
            (
                "Heartbeat Age",
                match self.heartbeat_age_seconds {
                    Some(-1) => "missing".to_owned(),
                    Some(s) => format!("{s}s"),
                    None => "unknown".to_owned(),
                },
            ),
        ]
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique within this agent's state directory.
    pub id: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// The word in subjects and titles: the status, `RESOLVED`, `FLAPPING`, `RESTARTED`, ...
    pub label: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The machine.
    pub host: String,
    /// One line for people, e.g. `HEALTHY -> CRITICAL: Service is not active`.
    pub headline: String,
    /// The original's fields.
    pub summary: Summary,
    /// The full report, as `check --json` prints it.
    pub report: super::compact::CompactJson,
}

impl Notification {
    /// Builds the notification for `notice` about `report`.
    pub fn new(id: String, notice: &Notice, report: &Report, now: DateTime<Utc>) -> Notification {
        let status = report.status;
        let first = report.alerts.first().map(|a| format!(": {a}"));
        let first = first.unwrap_or_default();
        let (kind, label, headline) = match notice {
            Notice::Problem {
                status: s,
                previous,
                new_kinds,
            } => {
                let headline = match previous {
                    Some(p) => format!("{p} -> {s}{first}"),
                    None if new_kinds.is_empty() => format!("{s}{first}"),
                    None => {
                        let texts = new_alert_texts(report, new_kinds);
                        format!("{s}: {}", texts.join("; "))
                    }
                };
                (NotificationKind::Problem, s.as_str().to_owned(), headline)
            }
            Notice::Reminder { status: s, since } => {
                let since = since
                    .map(|t| format!(" since {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)))
                    .unwrap_or_default();
                (
                    NotificationKind::Reminder,
                    s.as_str().to_owned(),
                    format!("still {s}{since}{first}"),
                )
            }
            Notice::Resolved { previous } => (
                NotificationKind::Resolved,
                "RESOLVED".to_owned(),
                match previous {
                    Some(p) => format!("{p} -> HEALTHY: the worker is healthy again"),
                    None => "HEALTHY: the worker is healthy again".to_owned(),
                },
            ),
            Notice::Flapping { changes } => (
                NotificationKind::Flapping,
                "FLAPPING".to_owned(),
                format!(
                    "the status changed {changes} times in a short while (now {status}); \
                     further changes are not told until it is stable"
                ),
            ),
            Notice::Restart(RestartOutcome::Restarted { message }) => (
                NotificationKind::Restarted,
                "RESTARTED".to_owned(),
                format!("the agent restarted the worker: {message}"),
            ),
            Notice::Restart(RestartOutcome::Failed { message }) => (
                NotificationKind::RestartFailed,
                "RESTART FAILED".to_owned(),
                format!("the agent could not restart the worker: {message}"),
            ),
            Notice::Restart(RestartOutcome::BackoffAtCap { delay_seconds }) => (
                NotificationKind::BackoffAtCap,
                "BACKOFF".to_owned(),
                format!(
                    "the worker keeps failing: restarts now wait the maximum delay ({delay_seconds}s)"
                ),
            ),
        };
        Notification {
            id,
            kind,
            label,
            created_at: now,
            host: report.agent.hostname.clone(),
            headline,
            summary: Summary::of(report),
            report: super::compact::CompactJson::of(report),
        }
    }

    /// The clearly marked test notification of `alert test`.
    pub fn test(id: String, report: &Report, now: DateTime<Utc>) -> Notification {
        Notification {
            id,
            kind: NotificationKind::Test,
            label: "TEST".to_owned(),
            created_at: now,
            host: report.agent.hostname.clone(),
            headline: "This is a test notification from cryptobot-agent; no action is needed."
                .to_owned(),
            summary: Summary::of(report),
            report: super::compact::CompactJson::of(report),
        }
    }

    /// `[CRITICAL] Cryptobot Health Alert` (the original's subject, with the label).
    pub fn subject(&self) -> String {
        format!("[{}] Cryptobot Health Alert", self.label)
    }

    /// How the label looks: `(emoji, hex colour)`.
    pub fn style(&self) -> (&'static str, &'static str) {
        match self.label.as_str() {
            "CRITICAL" | "RESTART FAILED" => ("🔴", "#FF0000"),
            "WARNING" | "BACKOFF" => ("⚠️", "#FFA500"),
            "FLAPPING" => ("🔁", "#FFA500"),
            "RESOLVED" | "RESTARTED" => ("✅", "#36A64F"),
            "TEST" => ("🧪", "#439FE0"),
            _ => ("❔", "#808080"),
        }
    }

    /// The colour as a number (Discord).
    pub fn colour_number(&self) -> u32 {
        u32::from_str_radix(self.style().1.trim_start_matches('#'), 16).unwrap_or(0x80_80_80)
    }

    /// The status of the report this is about.
    pub fn status(&self) -> Option<Status> {
        super::policy::parse_status(&self.summary.status)
    }
}

fn new_alert_texts(report: &Report, kinds: &[String]) -> Vec<String> {
    let texts: Vec<String> = report
        .checks
        .iter()
        .filter_map(|c| c.alert.as_ref())
        .filter(|a| kinds.contains(&a.kind))
        .map(|a| a.text.clone())
        .collect();
    if texts.is_empty() {
        kinds.to_vec()
    } else {
        texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::testing::sample_snapshot;

    #[test]
    fn headlines_and_subjects() {
        let report = sample_snapshot(Status::Critical).report;
        let now = Utc::now();
        let n = Notification::new(
            "1".into(),
            &Notice::Problem {
                status: Status::Critical,
                previous: Some(Status::Healthy),
                new_kinds: vec![],
            },
            &report,
            now,
        );
        assert_eq!(n.subject(), "[CRITICAL] Cryptobot Health Alert");
        assert!(
            n.headline
                .starts_with("HEALTHY -> CRITICAL: Service is not"),
            "{}",
            n.headline
        );
        let healthy = sample_snapshot(Status::Healthy).report;
        let r = Notification::new(
            "2".into(),
            &Notice::Resolved {
                previous: Some(Status::Critical),
            },
            &healthy,
            now,
        );
        assert_eq!(r.subject(), "[RESOLVED] Cryptobot Health Alert");
        let f = Notification::new("3".into(), &Notice::Flapping { changes: 6 }, &healthy, now);
        assert_eq!(f.subject(), "[FLAPPING] Cryptobot Health Alert");
        let back: Notification = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }
}
