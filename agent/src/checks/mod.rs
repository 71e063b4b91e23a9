//! The health checks. Each check has its own file with two halves: a probe that reads the world
//! (D-Bus, statvfs, `/proc`, files, the journal) under a deadline, and a pure `assess` that turns the
//! reading into a [`CheckOutcome`]. [`collect`] runs every probe concurrently.
//!
//! The original monitor's checks (service, crash loop, disk, memory, heartbeat, journal) have typed
//! readings, because the report's original keys (`disk_usage_percent`, `heartbeat_age_seconds`…)
//! are made from them; `evaluate::evaluate` judges them in the original order. Every other check
//! implements [`Check`] and is one line in [`CHECKS`]: adding a check is one new file plus that
//! line, and its outcomes go wherever checks go (alerts, the JSON `checks` list, Prometheus, gRPC,
//! the status page), after the original ones.

pub mod disk;
pub mod heartbeat;
pub mod inodes;
pub mod journal;
pub mod memory;
pub mod service;

use std::{future::Future, path::PathBuf, pin::Pin, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{config::Config, health::CheckOutcome, systemd::UnitFacts};

/// The checks beyond the original ones, in the order of their alerts: one line per check.
pub const CHECKS: &[&dyn Check] = &[&inodes::Inodes];

/// What a [`Check`]'s run returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Vec<CheckOutcome>> + Send + 'a>>;

/// A check that reads and judges in one place (see the module doc).
pub trait Check: Sync {
    /// Its name in outputs; a run that times out is one UNKNOWN outcome of this name.
    fn name(&self) -> &'static str;
    /// How long a run may take.
    fn deadline(&self, config: &Config) -> Duration;
    /// Probes and judges: one outcome per thing checked (a probe that fails is UNKNOWN).
    fn run<'a>(&'a self, config: &'a Config) -> CheckFuture<'a>;
}

/// Runs every registered [`Check`] concurrently, each under its deadline, in registry order.
async fn run_checks(config: &Config) -> Vec<CheckOutcome> {
    let runs = CHECKS.iter().map(|check| async move {
        match tokio::time::timeout(check.deadline(config), check.run(config)).await {
            Ok(outcomes) => outcomes,
            Err(_) => vec![CheckOutcome::new(check.name()).unknown(
                &format!("{}_unknown", check.name()),
                format!(
                    "Check {} timed out after {}",
                    check.name(),
                    humantime::format_duration(check.deadline(config))
                ),
            )],
        }
    });
    futures_util::future::join_all(runs).await.concat()
}

/// A probe that failed or ran out of time. Its check becomes UNKNOWN; the value is never guessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    /// What failed, for people.
    pub message: String,
}

impl ProbeError {
    /// A probe error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ProbeError {
            message: message.into(),
        }
    }
}

/// The outcome of one probe.
pub type Probe<T> = Result<T, ProbeError>;

/// Runs `probe` under `deadline`; running out of time is a [`ProbeError`].
pub async fn with_deadline<T>(
    deadline: Duration,
    probe: impl Future<Output = Probe<T>>,
) -> Probe<T> {
    match tokio::time::timeout(deadline, probe).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::new(format!(
            "timed out after {}",
            humantime::format_duration(deadline)
        ))),
    }
}

/// Everything one evaluation looked at.
#[derive(Debug, Clone)]
pub struct Readings {
    /// When the probes started.
    pub taken_at: DateTime<Utc>,
    /// The worker unit, from systemd.
    pub service: Probe<UnitFacts>,
    /// One reading per configured mount point, in configuration order.
    pub disks: Vec<(PathBuf, Probe<disk::DiskUsage>)>,
    /// Memory use from `/proc/meminfo`.
    pub memory: Probe<memory::MemoryUsage>,
    /// The freshest heartbeat file.
    pub heartbeat: Probe<heartbeat::Heartbeat>,
    /// Error-priority journal entries of the unit in the window.
    pub journal: Probe<journal::JournalErrors>,
    /// The outcomes of the registered [`CHECKS`].
    pub more: Vec<CheckOutcome>,
}

/// Where the probes read from. Tests point `proc` elsewhere; nothing else knows the real roots.
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// The proc file system, normally `/proc`.
    pub proc: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc: PathBuf::from("/proc"),
        }
    }
}

/// Runs every probe concurrently, each under its own deadline.
///
/// `journal_since` is the end of the previous check's journal window, if one is known; `bus` is an
/// existing system bus connection to reuse (a fresh one is opened when `None`).
pub async fn collect(
    config: &Config,
    paths: &HostPaths,
    bus: Option<&zbus::Connection>,
    journal_since: Option<DateTime<Utc>>,
) -> Readings {
    let taken_at = Utc::now();
    let dl = &config.deadlines;
    let service = with_deadline(dl.service, service::probe(bus, &config.unit));
    let disk_deadline = dl.disk;
    let disk_tasks: Vec<_> = config
        .disk
        .mounts
        .iter()
        .map(|m| {
            let mount = m.clone();
            (
                m.clone(),
                tokio::spawn(with_deadline(disk_deadline, disk::probe(mount))),
            )
        })
        .collect();
    let disks = async move {
        let mut out = Vec::with_capacity(disk_tasks.len());
        for (mount, task) in disk_tasks {
            let reading = task
                .await
                .unwrap_or_else(|e| Err(ProbeError::new(format!("disk probe task failed: {e}"))));
            out.push((mount, reading));
        }
        out
    };
    let memory = with_deadline(dl.memory, memory::probe(&paths.proc));
    let heartbeat = with_deadline(
        dl.heartbeat,
        heartbeat::probe(&config.heartbeat.paths, taken_at),
    );
    let since = journal::window_start(journal_since, taken_at, config.journal_max_lookback);
    let journal = with_deadline(
        dl.journal,
        journal::probe(&config.unit, since, taken_at, &config.journal_patterns),
    );
    let (service, disks, memory, heartbeat, journal, more) = tokio::join!(
        service,
        disks,
        memory,
        heartbeat,
        journal,
        run_checks(config)
    );
    // Errors of earlier invocations of the unit are not "recent", whatever the window says.
    let journal = journal.map(|j| match &service {
        Ok(facts) => j.since_invocation(facts.invocation_start()),
        Err(_) => j,
    });
    Readings {
        taken_at,
        service,
        disks,
        memory,
        heartbeat,
        journal,
        more,
    }
}
