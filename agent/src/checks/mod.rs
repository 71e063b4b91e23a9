//! The health checks. Each check has its own file with two halves: a probe that reads the world
//! (D-Bus, statvfs, `/proc`, files, the journal) under a deadline, and a pure `assess` that turns the
//! reading into a [`CheckOutcome`]. [`collect`] runs every probe concurrently; the registry of checks
//! and their order (which is the order of the alerts) is `evaluate::evaluate`.

pub mod disk;
pub mod heartbeat;
pub mod journal;
pub mod memory;
pub mod service;

use std::{future::Future, path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{config::Config, systemd::UnitFacts};

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
    let (service, disks, memory, heartbeat, journal) =
        tokio::join!(service, disks, memory, heartbeat, journal);
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
    }
}
