//! The supervisor: the one task that owns the daemon's state. It reacts to D-Bus events, resource
//! check results, restart outcomes and control requests; after each of them it re-evaluates,
//! publishes a snapshot, decides on restarts, and pings the systemd watchdog. The watchdog ping is
//! only ever sent here, after a completed iteration, so a wedged loop gets the agent restarted.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use zbus::Connection;

use super::{
    AgentHandle, BackoffView, ControlReply, ControlRequest, DaemonState, Event, EventKind,
    PauseView, Sample, Snapshot,
    watcher::{self, BusEvent},
};
use crate::{
    alerts::{Alerter, policy::RestartOutcome},
    checks::{self, HostPaths, Probe, ProbeError, Readings, heartbeat::Heartbeat},
    config::Config,
    forecast::DiskTrend,
    health::{Alert, CheckOutcome, Status},
    report::{AgentInfo, Report},
    restart::{
        control::{self, Action, Situation},
        helper,
        maintenance::Pause,
        policy::Decision,
        state::BackoffState,
    },
    sdnotify,
    state::JournalState,
    systemd::{self, UnitFacts},
};

mod publish;

pub use publish::status_line;
use publish::{event, placeholder_snapshot};

/// Most events kept in memory and shown in status outputs.
const MAX_EVENTS: usize = 100;

/// The resource part of the readings (everything but the service).
#[derive(Debug, Clone)]
struct Resources {
    disks: Vec<(std::path::PathBuf, Probe<checks::disk::DiskUsage>)>,
    memory: Probe<checks::memory::MemoryUsage>,
    heartbeat: Probe<Heartbeat>,
    journal: Probe<checks::journal::JournalErrors>,
    more: Vec<CheckOutcome>,
}

#[derive(Debug)]
struct InFlight {
    reply: Option<oneshot::Sender<ControlReply>>,
}

#[derive(Debug)]
struct RestartDone {
    ok: bool,
    message: String,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    config: Config,
    paths: HostPaths,
    agent: AgentInfo,
    bus: Option<Connection>,
    facts: Probe<UnitFacts>,
    resources: Option<Resources>,
    journal_since: Option<DateTime<Utc>>,
    /// The disk-full forecast's samples, per mount.
    trends: std::collections::HashMap<std::path::PathBuf, DiskTrend>,
    backoff: BackoffState,
    pause: Option<Pause>,
    in_flight: Option<InFlight>,
    next_restart_at: Option<DateTime<Utc>>,
    events: VecDeque<Event>,
    history: VecDeque<Sample>,
    history_arc: Arc<[Sample]>,
    last_status: Option<Status>,
    started_at: DateTime<Utc>,
    /// The last failure to save state, until a save succeeds again.
    state_error: Option<String>,
    seq: u64,
    snapshots: watch::Sender<Arc<Snapshot>>,
    control_rx: mpsc::Receiver<ControlRequest>,
    control_tx: mpsc::Sender<ControlRequest>,
    restart_tx: mpsc::Sender<RestartDone>,
    restart_rx: mpsc::Receiver<RestartDone>,
    alerter: Alerter,
}

impl Supervisor {
    /// Loads the persisted state, runs the first full check and publishes the first snapshot.
    pub async fn start(config: Config) -> Supervisor {
        let now = Utc::now();
        let mut events = VecDeque::new();
        let mut note = |message: String| {
            tracing::warn!(message = %message);
            events.push_back(event(now, EventKind::Agent, message));
        };
        let stale = crate::state::remove_stale_temporaries(&config.state_dir);
        if stale > 0 {
            tracing::info!(
                message = "Removed temporary files of interrupted state writes.",
                count = stale
            );
        }
        let (backoff, err) = BackoffState::load(&config.state_dir, &config.restart);
        if let Some(e) = err {
            note(format!("restart state reset: {e}"));
        }
        let (pause, err) = Pause::load(&config.state_dir);
        if let Some(e) = err {
            note(format!("maintenance state reset: {e}"));
        }
        let journal_since =
            JournalState::load(&config.state_dir, &config.unit).unwrap_or_else(|e| {
                note(format!("journal state reset: {e}"));
                None
            });
        let placeholder = Arc::new(placeholder_snapshot(&config, now));
        let (snapshots, _) = watch::channel(placeholder);
        let (control_tx, control_rx) = mpsc::channel(16);
        let (restart_tx, restart_rx) = mpsc::channel(4);
        let agent = AgentInfo::current();
        let alerter = Alerter::start(&config.alerts, &config.state_dir, &agent.hostname);
        let mut sup = Supervisor {
            paths: HostPaths::default(),
            agent,
            alerter,
            bus: None,
            facts: Err(ProbeError::new("not checked yet")),
            resources: None,
            journal_since,
            trends: Default::default(),
            backoff,
            pause,
            in_flight: None,
            next_restart_at: None,
            events,
            history: VecDeque::new(),
            history_arc: Arc::from(Vec::new()),
            last_status: None,
            started_at: now,
            state_error: None,
            seq: 0,
            snapshots,
            control_rx,
            control_tx,
            restart_tx,
            restart_rx,
            config,
        };
        let readings = checks::collect(&sup.config, &sup.paths, None, sup.journal_since).await;
        sup.absorb_readings(readings);
        sup.after_change(Utc::now());
        sup
    }

    /// A handle for the front ends.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle::new(self.snapshots.subscribe(), self.control_tx.clone())
    }

    /// The main loop; returns when `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (bus_tx, mut bus_rx) = mpsc::channel(8);
        tokio::spawn(watcher::watch(
            self.config.unit.clone(),
            bus_tx,
            shutdown.child_token(),
        ));
        let (readings_tx, mut readings_rx) = mpsc::channel::<Readings>(1);
        let mut collecting = false;

        let mut ticks = tokio::time::interval(self.config.daemon.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticks.tick().await; // the first tick is now, and the first check has just run
        let watchdog_period = sdnotify::watchdog_period();
        let mut watchdog =
            tokio::time::interval(watchdog_period.unwrap_or(Duration::from_secs(3600)));
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wedge_hook = test_hook_wedge_file(&self.config);

        loop {
            let restart_due = self.next_restart_at.map(|t| {
                let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::Instant::now() + wait
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {
                    if !collecting {
                        collecting = true;
                        let config = self.config.clone();
                        let paths = self.paths.clone();
                        let bus = self.bus.clone();
                        let since = self.journal_since;
                        let tx = readings_tx.clone();
                        tokio::spawn(async move {
                            let r = checks::collect(&config, &paths, bus.as_ref(), since).await;
                            let _ = tx.send(r).await;
                        });
                    }
                }
                Some(readings) = readings_rx.recv() => {
                    collecting = false;
                    self.absorb_readings(readings);
                }
                Some(ev) = bus_rx.recv() => self.on_bus_event(ev).await,
                Some(req) = self.control_rx.recv() => self.on_control(req).await,
                Some(done) = self.restart_rx.recv() => self.on_restart_done(done).await,
                _ = sleep_until_opt(restart_due) => {}
                _ = watchdog.tick() => {}
            }
            self.after_change(Utc::now());
            if let Some(path) = &wedge_hook {
                if path.exists() {
                    tracing::warn!(message = "Test hook: main loop wedged.", file = %path.display());
                    std::future::pending::<()>().await;
                }
            }
            if watchdog_period.is_some() {
                sdnotify::watchdog();
            }
        }
        self.alerter.shutdown().await;
    }

    fn absorb_readings(&mut self, mut r: Readings) {
        let settings = self.config.disk.forecast;
        let at = std::time::SystemTime::from(r.taken_at);
        for (mount, reading) in &mut r.disks {
            if let Ok(usage) = reading {
                let trend = self.trends.entry(mount.clone()).or_default();
                usage.forecast = Some(trend.observe(usage.sample(at), &settings));
            }
        }
        if let Ok(j) = &r.journal {
            self.journal_since = Some(j.until);
            let saved = JournalState::save(&self.config.state_dir, &self.config.unit, j.until);
            self.note_save(saved);
        }
        // The service reading of a resource round is older than what the watcher keeps up to date,
        // unless there is no connection to keep it up to date.
        if self.bus.is_none() {
            self.facts = r.service;
        }
        let sample = Sample {
            time: r.taken_at,
            disk_percent: r
                .disks
                .iter()
                .filter_map(|(_, d)| d.as_ref().ok().map(|d| d.percent))
                .max(),
            memory_percent: r.memory.as_ref().ok().map(|m| m.percent),
        };
        self.history.push_back(sample);
        let keep =
            self.config.daemon.history.as_secs() / self.config.daemon.interval.as_secs().max(1);
        while self.history.len() as u64 > keep.max(1) {
            self.history.pop_front();
        }
        self.history_arc = self.history.iter().copied().collect();
        self.resources = Some(Resources {
            disks: r.disks,
            memory: r.memory,
            heartbeat: r.heartbeat,
            journal: r.journal,
            more: r.more,
        });
    }

    async fn on_bus_event(&mut self, ev: BusEvent) {
        match ev {
            BusEvent::Connected(conn) => {
                if self.bus.is_none() {
                    tracing::info!(message = "Connected to the system bus.");
                }
                self.bus = Some(conn);
                self.refresh_facts().await;
            }
            BusEvent::Changed => self.refresh_facts().await,
            BusEvent::Lost(why) => {
                if self.bus.take().is_some() {
                    self.push_event(EventKind::Agent, format!("D-Bus connection lost: {why}"));
                }
                self.facts = Err(ProbeError::new(why));
            }
        }
    }

    async fn refresh_facts(&mut self) {
        let Some(conn) = &self.bus else { return };
        let probe = async {
            systemd::unit_facts(conn, &self.config.unit)
                .await
                .map_err(|e| ProbeError::new(e.to_string()))
        };
        self.facts = checks::with_deadline(self.config.deadlines.service, probe).await;
    }

    /// Re-evaluates, publishes, and decides on restarts.
    fn after_change(&mut self, now: DateTime<Utc>) {
        if let Some(p) = &self.pause {
            if !p.active_at(now) {
                self.pause = None;
                self.store_pause();
                self.push_event(EventKind::Resumed, "maintenance pause ended".into());
            }
        }
        let mut dirty = false;
        if let Ok(f) = &self.facts {
            let added = self.backoff.observe_n_restarts(f.n_restarts, now);
            dirty |= added > 0;
        }
        dirty |= self.backoff.prune(now, self.config.crash_loop_window);
        self.decide_restart(now, &mut dirty);
        if dirty {
            self.save_backoff();
        }
        self.publish(now);
    }

    fn heartbeat_written_at(&self) -> Option<DateTime<Utc>> {
        match self.resources.as_ref().map(|r| &r.heartbeat) {
            Some(Ok(Heartbeat::Found { written_at, .. })) => Some(*written_at),
            _ => None,
        }
    }

    fn decide_restart(&mut self, now: DateTime<Utc>, dirty: &mut bool) {
        let Ok(facts) = &self.facts else {
            self.next_restart_at = None;
            return;
        };
        let situation = Situation {
            facts,
            heartbeat_written_at: self.heartbeat_written_at(),
            paused: self.pause.as_ref().is_some_and(|p| p.active_at(now)),
            in_flight: self.in_flight.is_some(),
            connected: self.bus.is_some(),
        };
        let step = control::automatic(&situation, &mut self.backoff, &self.config.restart, now);
        *dirty |= step.changed;
        if step.backoff_reset {
            self.push_event(
                EventKind::BackoffReset,
                "worker stable: restart backoff reset".into(),
            );
        }
        match step.decision {
            Decision::Nothing => self.next_restart_at = None,
            Decision::Wait { until } => self.next_restart_at = Some(until),
            Decision::RestartNow {
                cause,
                reset_failed,
                delay_seconds,
            } => {
                self.next_restart_at = None;
                self.begin_restart(
                    now,
                    cause.to_string(),
                    reset_failed,
                    Some(delay_seconds),
                    None,
                );
                *dirty = true;
            }
        }
    }

    fn begin_restart(
        &mut self,
        now: DateTime<Utc>,
        reason: String,
        reset_failed: bool,
        delay_seconds: Option<u64>,
        reply: Option<oneshot::Sender<ControlReply>>,
    ) {
        let Some(conn) = self.bus.clone() else {
            if let Some(r) = reply {
                let _ = r.send(ControlReply::Refused {
                    reason: "no connection to systemd".into(),
                });
            }
            return;
        };
        self.backoff.record_attempt(now, &self.config.restart);
        self.save_backoff();
        if delay_seconds.is_some_and(|d| d >= self.config.restart.max_delay.as_secs()) {
            self.alerter.restart_outcome(
                RestartOutcome::BackoffAtCap {
                    delay_seconds: delay_seconds.unwrap_or_default(),
                },
                false,
            );
        }
        tracing::warn!(message = "Restarting the worker.", %reason, attempt = self.backoff.restart_count);
        self.events.push_back(Event {
            time: now,
            kind: EventKind::Restart,
            message: reason,
            outcome: Some("started".into()),
            delay_seconds,
        });
        self.trim_events();
        self.in_flight = Some(InFlight { reply });
        let unit = self.config.unit.clone();
        let state_dir = self.config.state_dir.clone();
        let verify = self.config.restart.verify_timeout;
        let tx = self.restart_tx.clone();
        tokio::spawn(async move {
            let asked = Utc::now();
            let done =
                match helper::restart_worker(&conn, &unit, reset_failed, &state_dir, asked).await {
                    Err(e) => RestartDone {
                        ok: false,
                        message: format!("restart failed: {e}"),
                    },
                    Ok(via) => match systemd::wait_active(&conn, &unit, asked, verify).await {
                        Ok(f) => RestartDone {
                            ok: true,
                            message: format!("{unit} is active (pid {})", f.main_pid),
                        },
                        Err(e) => RestartDone {
                            ok: false,
                            message: format!("{e}{}", helper::hint(via)),
                        },
                    },
                };
            let _ = tx.send(done).await;
        });
    }

    async fn on_restart_done(&mut self, done: RestartDone) {
        let now = Utc::now();
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        // A new down period (a crash after this restart, or this restart's failure) counts from
        // now, not from the crash this restart answered.
        self.backoff.down_since = None;
        if done.ok {
            tracing::info!(message = "Worker restarted.");
        } else {
            tracing::error!(message = "Worker restart failed.", error = %done.message);
        }
        let paused = self.pause.as_ref().is_some_and(|p| p.active_at(now));
        self.alerter.restart_outcome(
            if done.ok {
                RestartOutcome::Restarted {
                    message: done.message.clone(),
                }
            } else {
                RestartOutcome::Failed {
                    message: done.message.clone(),
                }
            },
            paused,
        );
        if let Some(last) = self
            .events
            .iter_mut()
            .rev()
            .find(|e| e.kind == EventKind::Restart)
        {
            last.outcome = Some(if done.ok {
                "restarted".into()
            } else {
                done.message.clone()
            });
        }
        let _ = now;
        if let Some(reply) = flight.reply {
            let _ = reply.send(if done.ok {
                ControlReply::Restarted {
                    message: done.message,
                }
            } else {
                ControlReply::RestartFailed {
                    message: done.message,
                }
            });
        }
        self.refresh_facts().await;
    }

    async fn on_control(&mut self, req: ControlRequest) {
        let now = Utc::now();
        let ControlRequest { control, reply } = req;
        let answer = match control::answer(
            &control,
            &self.backoff,
            self.pause.as_ref(),
            self.in_flight.is_some(),
            now,
        ) {
            Action::Refuse(reason) => ControlReply::Refused {
                reason: reason.into(),
            },
            Action::Defer { until } => ControlReply::Deferred { until },
            Action::Restart { reason } => {
                self.begin_restart(now, reason.into(), true, None, Some(reply));
                return;
            }
            Action::Pause(pause) => {
                let until = pause.until;
                self.pause = Some(pause);
                self.store_pause();
                let text = match until {
                    Some(u) => format!("maintenance pause until {}", u.to_rfc3339()),
                    None => "maintenance pause until resumed".into(),
                };
                self.push_event(EventKind::Paused, text);
                ControlReply::Paused { until }
            }
            Action::Resume { was_paused } => {
                if was_paused {
                    self.pause = None;
                    self.store_pause();
                    self.push_event(
                        EventKind::Resumed,
                        "maintenance pause ended by request".into(),
                    );
                }
                ControlReply::Resumed
            }
            Action::ResetBackoff => {
                self.backoff.reset(&self.config.restart);
                self.save_backoff();
                self.push_event(
                    EventKind::BackoffReset,
                    "restart backoff reset by request".into(),
                );
                ControlReply::BackoffReset
            }
        };
        let _ = reply.send(answer);
    }

    fn save_backoff(&mut self) {
        let saved = self.backoff.save(&self.config.state_dir);
        self.note_save(saved);
    }

    fn store_pause(&mut self) {
        let saved = Pause::store(&self.config.state_dir, self.pause.as_ref());
        self.note_save(saved);
    }

    /// A failed save is logged and shown as a WARNING until a save succeeds again.
    fn note_save(&mut self, result: Result<(), crate::state::StateError>) {
        match result {
            Ok(()) => self.state_error = None,
            Err(e) => {
                if self.state_error.is_none() {
                    tracing::error!(message = "Cannot save agent state.", error = %e);
                }
                self.state_error = Some(e.to_string());
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The test hook that wedges the main loop (so tests can see systemd's watchdog fire): only in a
/// build with the `test-hooks` feature, run with `CRYPTOBOT_AGENT_TEST_HOOKS=1`, when the file
/// `<state_dir>/wedge-main-loop` exists. The shipped binary has no such hook.
#[cfg(feature = "test-hooks")]
fn test_hook_wedge_file(config: &Config) -> Option<std::path::PathBuf> {
    (std::env::var("CRYPTOBOT_AGENT_TEST_HOOKS").as_deref() == Ok("1"))
        .then(|| config.state_dir.join("wedge-main-loop"))
}

#[cfg(not(feature = "test-hooks"))]
fn test_hook_wedge_file(_: &Config) -> Option<std::path::PathBuf> {
    None
}
