//! Alerting: notifications (webhooks, email) and telemetry (Azure Application Insights).
//!
//! The [`Alerter`] is what the daemon and `check --alert` hold. [`Alerter::observe`] never waits: it
//! runs the pure [`policy`], turns its notices into [`notification::Notification`]s and pushes them
//! into each sink's bounded [`queue::Outbox`]; every sink has its own worker task, so a slow or dead
//! sink only delays itself. Outboxes and the policy state are persisted under the state directory
//! (atomically), so what was not delivered before a restart is delivered after it, unless expired.
//!
//! Files: [`policy`] (when to notify), [`notification`] (what), [`webhook`], [`email`] and
//! [`appinsights`] (one per sink), [`connection_string`], [`queue`] (outboxes, workers, status),
//! [`secret`] (redaction).

pub mod appinsights;
pub mod compact;
pub use crate::config::connection_string;
pub mod email;
pub mod imds;
pub mod notification;
pub mod policy;
pub mod queue;
pub use crate::config::secret;
pub mod webhook;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::queue::SinkStatus;
use self::{
    appinsights::{BatchOutcome, TelemetryItem, TrackClient},
    email::EmailSink,
    notification::Notification,
    policy::{Notice, Observation, PolicyState, RestartOutcome},
    queue::{Deliver, DeliveryError, Outbox},
    webhook::WebhookSink,
};
use crate::{
    config::AlertsConfig,
    report::Report,
    state::{load_json, save_json},
};

/// The policy state file under the state directory.
pub const POLICY_FILE: &str = "alert_state.json";
/// The directory of the outbox files under the state directory.
pub const OUTBOX_DIR: &str = "alerts";

/// Least time between two writes of a notification outbox (a crash loses at most this much).
const NOTIFICATION_WRITE_GAP: Duration = Duration::from_secs(1);

/// Least time between two writes of the telemetry outbox: it holds up to `queue_size` items (a
/// few megabytes when Application Insights is unreachable for long), and losing a few seconds of
/// telemetry in a crash matters less than rewriting it after every check.
const TELEMETRY_WRITE_GAP: Duration = Duration::from_secs(10);

/// A notification sink (one per configured webhook, plus email).
#[derive(Debug)]
enum NotifySink {
    Webhook(WebhookSink),
    Email(EmailSink),
}

impl Deliver for NotifySink {
    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        match self {
            NotifySink::Webhook(w) => w.deliver(n).await,
            NotifySink::Email(e) => e.deliver(n).await,
        }
    }
}

#[derive(Debug)]
struct SinkHandle {
    sink: Arc<NotifySink>,
    outbox: Arc<Outbox<Notification>>,
}

#[derive(Debug)]
struct TelemetryHandle {
    client: Arc<TrackClient>,
    outbox: Arc<Outbox<TelemetryItem>>,
    interval: Duration,
}

#[derive(Debug, Default)]
struct Core {
    policy: PolicyState,
    last_report: Option<Report>,
    last_metrics: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Inner {
    enabled: bool,
    config: AlertsConfig,
    host: String,
    core: Mutex<Core>,
    policy_changed: watch::Sender<u64>,
    policy_path: PathBuf,
    sinks: Vec<SinkHandle>,
    telemetry: Option<TelemetryHandle>,
    ids: AtomicU64,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The result of sending a test through one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The sink's name.
    pub sink: String,
    /// Its kind.
    pub kind: String,
    /// Its host.
    pub target: String,
    /// `None`: delivered; otherwise why not.
    pub error: Option<String>,
}

/// The alerting front: cheap to clone, never blocks its caller.
#[derive(Debug, Clone)]
pub struct Alerter {
    inner: Arc<Inner>,
}

impl Alerter {
    /// Starts one worker per configured sink (must run inside a tokio runtime). `host` is the
    /// machine's name (EHLO, telemetry role instance).
    pub fn start(config: &AlertsConfig, state_dir: &Path, host: &str) -> Alerter {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let outbox_dir = state_dir.join(OUTBOX_DIR);
        // Without a sink there is nobody to tell: the policy does not run (and keeps no state), so
        // a sink added later hears about what is wrong at that time.
        let enabled = config.enabled
            && (!config.webhooks.is_empty()
                || config.email.is_some()
                || config.appinsights.is_some());
        let mut sinks = Vec::new();
        let mut telemetry = None;
        if enabled {
            let mut add = |name: &str, kind: &str, target: &str, sink: NotifySink| {
                let outbox = Outbox::load(
                    outbox_dir.join(format!("outbox-{name}.json")),
                    config.queue_size,
                    SinkStatus::new(name, kind, target),
                );
                let sink = Arc::new(sink);
                tasks.push(outbox.spawn_persister(NOTIFICATION_WRITE_GAP, shutdown.child_token()));
                tasks.push(tokio::spawn(queue::notification_worker(
                    outbox.clone(),
                    sink.clone(),
                    config.retry,
                    config.max_age,
                    shutdown.child_token(),
                )));
                sinks.push(SinkHandle { sink, outbox });
            };
            for w in &config.webhooks {
                add(
                    &w.name,
                    w.kind.as_str(),
                    &w.host,
                    NotifySink::Webhook(WebhookSink::new(w.clone())),
                );
            }
            if let Some(e) = &config.email {
                add(
                    "email",
                    "email",
                    &e.host,
                    NotifySink::Email(EmailSink::new(e.clone(), host)),
                );
            }
            if let Some(ai) = &config.appinsights {
                let client = Arc::new(TrackClient::new(ai, host).with_imds(&config.imds));
                let outbox = Outbox::load(
                    outbox_dir.join("outbox-appinsights.json"),
                    ai.queue_size,
                    SinkStatus::new("appinsights", "appinsights", client.host()),
                );
                tasks.push(outbox.spawn_persister(TELEMETRY_WRITE_GAP, shutdown.child_token()));
                tasks.push(tokio::spawn(appinsights::worker(
                    outbox.clone(),
                    client.clone(),
                    ai.clone(),
                    shutdown.child_token(),
                )));
                telemetry = Some(TelemetryHandle {
                    client,
                    outbox,
                    interval: ai.interval,
                });
            }
        }
        let policy_path = state_dir.join(POLICY_FILE);
        let policy = match load_json::<PolicyState>(&policy_path) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(message = "Alert state unusable; starting fresh.", error = %e);
                PolicyState::default()
            }
        };
        let (policy_changed, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            enabled,
            config: config.clone(),
            host: host.to_owned(),
            core: Mutex::new(Core {
                policy,
                ..Core::default()
            }),
            policy_changed,
            policy_path,
            sinks,
            telemetry,
            ids: AtomicU64::new(0),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        if enabled {
            tasks.push(spawn_policy_persister(&inner));
        }
        *lock(&inner.tasks) = tasks;
        Alerter { inner }
    }

    /// An alerter with no sinks (alerting not configured, or for tests).
    pub fn disabled() -> Alerter {
        let config = AlertsConfig {
            enabled: false,
            ..AlertsConfig::default()
        };
        let (policy_changed, _) = watch::channel(0);
        Alerter {
            inner: Arc::new(Inner {
                enabled: false,
                config,
                host: String::new(),
                core: Mutex::new(Core::default()),
                policy_changed,
                policy_path: PathBuf::new(),
                sinks: Vec::new(),
                telemetry: None,
                ids: AtomicU64::new(0),
                shutdown: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Whether any sink is configured.
    pub fn has_sinks(&self) -> bool {
        !self.inner.sinks.is_empty() || self.inner.telemetry.is_some()
    }

    /// Feeds a report as of `now` (never waits); `paused` silences notifications (not telemetry).
    pub fn observe(&self, report: &Report, paused: bool, now: DateTime<Utc>) {
        let inner = &self.inner;
        if !inner.enabled {
            return;
        }
        let obs = Observation {
            status: report.status,
            alert_kinds: report
                .checks
                .iter()
                .filter_map(|c| c.alert.as_ref().map(|a| a.kind.clone()))
                .collect(),
            paused,
        };
        let mut core = lock(&inner.core);
        let before = core.policy.clone();
        let previous_status = before.last_seen;
        let notices = core.policy.observe(&inner.config.policy, &obs, now);
        if core.policy != before {
            inner.policy_changed.send_modify(|v| *v += 1);
        }
        core.last_report = Some(report.clone());
        if let Some(t) = &inner.telemetry {
            let due = core.last_metrics.is_none_or(|last| {
                (now - last).to_std().unwrap_or(Duration::ZERO) >= t.interval.mul_f64(0.9)
            });
            if due {
                core.last_metrics = Some(now);
                let id = self.next_id(now);
                let mut items = appinsights::metrics(report, now);
                items.push(TelemetryItem::availability(report, &id, now));
                items.extend(appinsights::alert_events(report, now));
                for i in items {
                    t.outbox.push(i, now);
                }
            }
            if let Some(prev) = previous_status.filter(|p| *p != report.status) {
                let mut p = Map::new();
                p.insert("from".into(), prev.as_str().into());
                p.insert("to".into(), report.status.as_str().into());
                p.insert("alerts".into(), report.alerts.join("; ").into());
                p.insert("host".into(), inner.host.clone().into());
                t.outbox
                    .push(TelemetryItem::event("health_status_changed", p, now), now);
            }
        }
        drop(core);
        for notice in notices {
            self.send(&notice, report, now);
        }
    }

    /// Tells a restart outcome (never waits).
    pub fn restart_outcome(&self, outcome: RestartOutcome, paused: bool) {
        let inner = &self.inner;
        if !inner.enabled {
            return;
        }
        let now = Utc::now();
        if let Some(t) = &inner.telemetry {
            let mut p = Map::new();
            let (what, detail) = match &outcome {
                RestartOutcome::Restarted { message } => ("restarted", message.clone()),
                RestartOutcome::Failed { message } => ("failed", message.clone()),
                RestartOutcome::BackoffAtCap { delay_seconds } => {
                    ("backoff_at_cap", format!("{delay_seconds}s"))
                }
            };
            p.insert("outcome".into(), what.into());
            p.insert("detail".into(), detail.into());
            p.insert("host".into(), inner.host.clone().into());
            t.outbox
                .push(TelemetryItem::event("worker_restart", p, now), now);
        }
        let mut core = lock(&inner.core);
        let notice = core.policy.restart(outcome, paused);
        inner.policy_changed.send_modify(|v| *v += 1);
        let report = core.last_report.clone();
        drop(core);
        if let (Some(notice), Some(report)) = (notice, report) {
            self.send(&notice, &report, now);
        }
    }

    fn next_id(&self, now: DateTime<Utc>) -> String {
        let n = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", now.timestamp_micros())
    }

    fn send(&self, notice: &Notice, report: &Report, now: DateTime<Utc>) {
        let n = Notification::new(self.next_id(now), notice, report, now);
        tracing::info!(message = "Notification.", label = %n.label, headline = %n.headline);
        for s in &self.inner.sinks {
            s.outbox.push(n.clone(), now);
        }
    }

    /// Every sink's status.
    pub fn sinks(&self) -> Vec<SinkStatus> {
        let mut out: Vec<SinkStatus> = self.inner.sinks.iter().map(|s| s.outbox.status()).collect();
        if let Some(t) = &self.inner.telemetry {
            out.push(t.outbox.status());
        }
        out
    }

    /// Receivers of every sink's status, by name (for waiting on deliveries).
    pub fn watch_sinks(&self) -> Vec<watch::Receiver<SinkStatus>> {
        let mut out: Vec<_> = self
            .inner
            .sinks
            .iter()
            .map(|s| s.outbox.watch_status())
            .collect();
        if let Some(t) = &self.inner.telemetry {
            out.push(t.outbox.watch_status());
        }
        out
    }

    /// Waits until every queue is empty, at most `timeout`; true when they are.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let all = async {
            for mut rx in self.watch_sinks() {
                if rx.wait_for(|s| s.pending == 0).await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    /// Stops the workers and writes the outboxes and the policy state.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Sends a clearly marked test notification through every notification sink and one
    /// telemetry event, directly (not through the queues), and says per sink how it went.
    pub async fn test(&self, report: &Report) -> Vec<TestResult> {
        let now = Utc::now();
        let n = Notification::test(self.next_id(now), report, now);
        let mut jobs = Vec::new();
        for s in &self.inner.sinks {
            let st = s.outbox.status();
            let sink = s.sink.clone();
            let n = n.clone();
            jobs.push(tokio::spawn(async move {
                let error = sink.deliver(&n).await.err().map(|e| e.message);
                TestResult {
                    sink: st.name,
                    kind: st.kind,
                    target: st.target,
                    error,
                }
            }));
        }
        if let Some(t) = &self.inner.telemetry {
            let client = t.client.clone();
            let st = t.outbox.status();
            let mut p = Map::new();
            p.insert("test".into(), Value::Bool(true));
            p.insert("host".into(), self.inner.host.clone().into());
            let item = TelemetryItem::event("cryptobot_agent_test", p, now);
            jobs.push(tokio::spawn(async move {
                let error = match client.send(&[item]).await {
                    BatchOutcome::Accepted => None,
                    BatchOutcome::Partial { rejected, .. } => Some(
                        rejected
                            .first()
                            .map(|(_, m)| format!("telemetry rejected: {m}"))
                            .unwrap_or_else(|| "the service asked to send again later".into()),
                    ),
                    BatchOutcome::Retry(m) => Some(m),
                    BatchOutcome::Rejected(m) => Some(format!("telemetry rejected: {m}")),
                };
                TestResult {
                    sink: st.name,
                    kind: st.kind,
                    target: st.target,
                    error,
                }
            }));
        }
        let mut out = Vec::new();
        for j in jobs {
            if let Ok(r) = j.await {
                out.push(r);
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn_policy_persister(inner: &Arc<Inner>) -> JoinHandle<()> {
    let mut changed = inner.policy_changed.subscribe();
    let shutdown = inner.shutdown.child_token();
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            let stop = tokio::select! {
                r = changed.changed() => r.is_err(),
                _ = shutdown.cancelled() => true,
            };
            let Some(inner) = weak.upgrade() else { return };
            let state = lock(&inner.core).policy.clone();
            let path = inner.policy_path.clone();
            drop(inner);
            let saved = tokio::task::spawn_blocking(move || save_json(&path, &state)).await;
            if let Ok(Err(e)) = saved {
                tracing::error!(message = "Cannot save the alert state.", error = %e);
            }
            if stop {
                return;
            }
        }
    })
}
