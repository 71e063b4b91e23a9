//! The interface between the daemon's supervisor and its front ends (HTTP, gRPC, local commands).
//!
//! The supervisor publishes one immutable [`Snapshot`] per evaluation on a watch channel; readers
//! only ever read the latest snapshot and never trigger probes. Changes go the other way as
//! [`Control`] requests, each answered by the supervisor with a [`ControlReply`].

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::report::Report;

/// Everything the daemon knows at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Increases by one with every published snapshot.
    #[serde(skip)]
    pub seq: u64,
    /// The health report (same shape as `check --json`).
    #[serde(flatten)]
    pub report: Report,
    /// Restart, backoff, pause and event state of the daemon.
    pub daemon: DaemonState,
    /// Disk and memory samples for the status page's charts, oldest first.
    #[serde(skip)]
    pub history: Arc<[Sample]>,
}

impl Snapshot {
    /// `/health` answers 200 (and gRPC health says SERVING) exactly when this is true.
    pub fn is_serving(&self) -> bool {
        self.report.status == crate::health::Status::Healthy
    }

    /// Pretty JSON of the report followed by the daemon's fields.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The daemon's own state, shown in every status output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonState {
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    /// Whether the daemon restarts the worker.
    pub restart_enabled: bool,
    /// Backoff of the agent's restarts.
    pub backoff: BackoffView,
    /// Maintenance pause, if any.
    pub pause: Option<PauseView>,
    /// Recent events, oldest first (bounded).
    pub events: Vec<Event>,
    /// Alert sinks: last delivery, last error, queue.
    pub sinks: Vec<SinkStatus>,
}

/// The restart backoff as status outputs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackoffView {
    /// Restarts in the current episode (reset after the stable period).
    pub restart_count: u32,
    /// When the agent last restarted the worker.
    pub last_restart_time: Option<DateTime<Utc>>,
    /// The delay before the next restart.
    pub backoff_seconds: u64,
    /// If a restart is pending: not before this time.
    pub next_restart_at: Option<DateTime<Utc>>,
}

/// A maintenance pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseView {
    /// When it began.
    pub since: DateTime<Utc>,
    /// When it ends by itself; `None` until `resume`.
    pub until: Option<DateTime<Utc>>,
}

/// Something that happened, for the event history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When.
    pub time: DateTime<Utc>,
    /// What kind of thing.
    pub kind: EventKind,
    /// For people, e.g. `HEALTHY -> CRITICAL: Service is not active`.
    pub message: String,
    /// For restarts: `restarted`, `failed: ...`, `deferred`.
    pub outcome: Option<String>,
    /// For restarts: the backoff delay that was waited.
    pub delay_seconds: Option<u64>,
}

/// Kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The overall status changed.
    Transition,
    /// The agent restarted (or tried to restart) the worker.
    Restart,
    /// The backoff was reset (stable period or by request).
    BackoffReset,
    /// Restarts (and alerts) were paused.
    Paused,
    /// The pause ended.
    Resumed,
    /// The daemon's own trouble (state file corrupt, D-Bus lost, ...).
    Agent,
}

/// One chart sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// When.
    pub time: DateTime<Utc>,
    /// Disk usage, percent.
    pub disk_percent: Option<u8>,
    /// Memory usage, percent.
    pub memory_percent: Option<u8>,
}

/// A request to change something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Restart the worker; honours the backoff unless `force`.
    Restart {
        /// Ignore the backoff.
        force: bool,
    },
    /// Suspend restarts (and alerts) for a while, or until `Resume` when `None`.
    Pause {
        /// How long.
        duration: Option<Duration>,
    },
    /// End a pause.
    Resume,
    /// Forget the backoff (next restart waits the initial delay).
    ResetBackoff,
}

/// The supervisor's answer to a [`Control`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlReply {
    /// The worker was restarted and is active again.
    Restarted {
        /// What happened, for people.
        message: String,
    },
    /// The restart was tried and did not bring the worker up.
    RestartFailed {
        /// Why.
        message: String,
    },
    /// Not restarted now because of the backoff.
    Deferred {
        /// The earliest time a restart is allowed.
        until: DateTime<Utc>,
    },
    /// Not done, and why (e.g. paused).
    Refused {
        /// Why.
        reason: String,
    },
    /// Paused.
    Paused {
        /// Until when (`None`: until resumed).
        until: Option<DateTime<Utc>>,
    },
    /// Resumed.
    Resumed,
    /// Backoff reset.
    BackoffReset,
}

/// A [`Control`] with the channel for its answer.
#[derive(Debug)]
pub struct ControlRequest {
    /// The request.
    pub control: Control,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ControlReply>,
}

/// The supervisor has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the agent is shutting down")]
pub struct AgentGone;

/// What front ends hold: the latest snapshot and a way to send controls.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlRequest>,
}

impl AgentHandle {
    /// A handle over these channels (the supervisor keeps the other ends).
    pub fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        control: mpsc::Sender<ControlRequest>,
    ) -> Self {
        AgentHandle { snapshots, control }
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot (for Watch RPCs).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// Sends a control request and waits for the answer.
    pub async fn control(&self, control: Control) -> Result<ControlReply, AgentGone> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(ControlRequest { control, reply })
            .await
            .map_err(|_| AgentGone)?;
        answer.await.map_err(|_| AgentGone)
    }
}

/// Test support: a handle over a fixed snapshot, plus the sender to publish new ones and the
/// receiver of control requests.
#[cfg(any(test, feature = "test-hooks"))]
pub fn test_handle(
    snapshot: Snapshot,
) -> (
    AgentHandle,
    watch::Sender<Arc<Snapshot>>,
    mpsc::Receiver<ControlRequest>,
) {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let (ctx, crx) = mpsc::channel(8);
    (AgentHandle::new(rx, ctx), tx, crx)
}

/// What a sink reports in the status outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStatus {
    /// The sink's name (also the name of its outbox file).
    pub name: String,
    /// `slack`, `discord`, `teams`, `generic`, `email` or `appinsights`.
    pub kind: String,
    /// Where it delivers: a host name only, never a URL or a key.
    pub target: String,
    /// When something was last delivered.
    pub last_delivery: Option<DateTime<Utc>>,
    /// The last failure (host names only, never secrets).
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Items waiting for delivery.
    pub pending: usize,
    /// Items delivered since the agent started.
    pub delivered: u64,
    /// Items dropped since the agent started (queue full, expired, or rejected).
    pub dropped: u64,
}

impl SinkStatus {
    /// A fresh status.
    pub fn new(name: &str, kind: &str, target: &str) -> SinkStatus {
        SinkStatus {
            name: name.to_owned(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            last_delivery: None,
            last_error: None,
            last_error_at: None,
            pending: 0,
            delivered: 0,
            dropped: 0,
        }
    }
}
