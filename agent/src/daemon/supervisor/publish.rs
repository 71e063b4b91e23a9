//! Publishing: one snapshot per evaluation (the report, the daemon's state, the status line for
//! systemd), and the bounded event history that status outputs show.

use chrono::{DateTime, Utc};

use super::*;

impl Supervisor {
    pub(super) fn publish(&mut self, now: DateTime<Utc>) {
        let crash_count = self.facts.as_ref().ok().map(|_| {
            self.backoff
                .restarts_within(now, self.config.crash_loop_window)
        });
        let not_yet = || ProbeError::new("not checked yet");
        let (disks, memory, heartbeat, journal, more) = match &self.resources {
            Some(r) => (
                r.disks.clone(),
                r.memory.clone(),
                live_heartbeat(&r.heartbeat, now),
                r.journal.clone(),
                r.more.clone(),
            ),
            None => (
                Vec::new(),
                Err(not_yet()),
                Err(not_yet()),
                Err(not_yet()),
                Vec::new(),
            ),
        };
        let readings = Readings {
            taken_at: now,
            service: self.facts.clone(),
            disks,
            memory,
            heartbeat,
            journal,
            more,
        };
        let state = self.state_error.as_ref().map(|e| {
            CheckOutcome::new("state")
                .value("not saved")
                .threshold("state files can be written")
                .alert(
                    Status::Warning,
                    Alert::new(
                        "state_unwritable",
                        format!("Agent state cannot be saved: {e}"),
                    ),
                )
        });
        let report = Report::judge(
            &readings,
            &self.config,
            crash_count,
            state,
            self.agent.clone(),
        );
        if self.last_status != Some(report.status) {
            if let Some(prev) = self.last_status {
                let why = report
                    .alerts
                    .first()
                    .map(|a| format!(": {a}"))
                    .unwrap_or_default();
                self.push_event(
                    EventKind::Transition,
                    format!("{prev} -> {}{why}", report.status),
                );
            }
            self.last_status = Some(report.status);
        }
        sdnotify::status(&status_line(&report));
        self.seq += 1;
        let snapshot = Snapshot {
            seq: self.seq,
            report,
            daemon: self.daemon_state(),
            history: self.history_arc.clone(),
        };
        self.alerter.observe(
            &snapshot.report,
            snapshot.daemon.pause.is_some(),
            Utc::now(),
        );
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    pub(super) fn daemon_state(&self) -> DaemonState {
        DaemonState {
            started_at: self.started_at,
            restart_enabled: self.config.restart.enabled,
            backoff: BackoffView {
                restart_count: self.backoff.restart_count,
                last_restart_time: self.backoff.last_restart_time,
                backoff_seconds: self.backoff.backoff_seconds,
                next_restart_at: self.next_restart_at,
            },
            pause: self.pause.as_ref().map(|p| PauseView {
                since: p.since,
                until: p.until,
            }),
            events: self.events.iter().cloned().collect(),
            sinks: self.alerter.sinks(),
        }
    }

    pub(super) fn push_event(&mut self, kind: EventKind, message: String) {
        tracing::info!(message = %message, kind = ?kind);
        self.events.push_back(event(Utc::now(), kind, message));
        self.trim_events();
    }

    pub(super) fn trim_events(&mut self) {
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }
}

pub(super) fn event(time: DateTime<Utc>, kind: EventKind, message: String) -> Event {
    Event {
        time,
        kind,
        message,
        outcome: None,
        delay_seconds: None,
    }
}

/// The heartbeat's age as of `now` (the file was read at the last resource check).
pub(super) fn live_heartbeat(reading: &Probe<Heartbeat>, now: DateTime<Utc>) -> Probe<Heartbeat> {
    match reading {
        Ok(Heartbeat::Found {
            path,
            written_at,
            source,
            ..
        }) => Ok(Heartbeat::Found {
            path: path.clone(),
            written_at: *written_at,
            age_seconds: (now - *written_at).num_seconds().max(0),
            source: *source,
        }),
        other => other.clone(),
    }
}

/// `HEALTHY · disk 41% · mem 22% · heartbeat 3s` (plus the first alert when there is one).
pub fn status_line(report: &Report) -> String {
    let pct = |v: Option<u8>| v.map_or_else(|| "?".to_owned(), |v| format!("{v}%"));
    let mut line = format!(
        "{} · disk {} · mem {} · heartbeat {}",
        report.status,
        pct(report.disk_usage_percent),
        pct(report.memory_usage_percent),
        match report.heartbeat_age_seconds {
            Some(-1) => "missing".to_owned(),
            Some(s) => format!("{s}s"),
            None => "?".to_owned(),
        }
    );
    if let Some(a) = report.alerts.first() {
        line.push_str(" · ");
        line.push_str(a);
    }
    line
}

pub(super) fn placeholder_snapshot(config: &Config, now: DateTime<Utc>) -> Snapshot {
    let e = || ProbeError::new("starting");
    let readings = Readings {
        taken_at: now,
        service: Err(e()),
        disks: Vec::new(),
        memory: Err(e()),
        heartbeat: Err(e()),
        journal: Err(e()),
        more: Vec::new(),
    };
    Snapshot {
        seq: 0,
        report: Report::judge(&readings, config, None, None, AgentInfo::current()),
        daemon: DaemonState {
            started_at: now,
            restart_enabled: config.restart.enabled,
            backoff: BackoffView {
                restart_count: 0,
                last_restart_time: None,
                backoff_seconds: 0,
                next_restart_at: None,
            },
            pause: None,
            events: Vec::new(),
            sinks: Vec::new(),
        },
        history: Arc::from(Vec::new()),
    }
}
