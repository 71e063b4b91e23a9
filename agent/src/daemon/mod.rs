//! `cryptobot-agent run`: the long-running daemon.
//!
//! A supervisor task owns all mutable state: it follows the worker unit through systemd's D-Bus
//! signals, runs the resource checks at a fixed rate, decides restarts, and publishes one
//! [`Snapshot`] per evaluation. Front ends (HTTP, gRPC) hold an [`AgentHandle`]: they read the latest
//! snapshot and send [`Control`] requests; they never run probes.

pub mod handle;
pub mod supervisor;
pub mod testing;
pub mod watcher;

pub use handle::{
    AgentGone, AgentHandle, BackoffView, Control, ControlReply, ControlRequest, DaemonState, Event,
    EventKind, PauseView, Sample, Snapshot,
};

use tokio_util::sync::CancellationToken;

use crate::{config::Config, sdnotify};

/// Runs the daemon until `shutdown` is cancelled: first check, listeners, READY, main loop,
/// STOPPING, bounded drain of the front ends.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let supervisor = supervisor::Supervisor::start(config).await;
    let _handle = supervisor.handle();
    sdnotify::ready();
    tracing::info!(message = "Agent ready.");
    supervisor.run(shutdown.clone()).await;
    sdnotify::stopping();
    tracing::info!(message = "Agent stopped.");
    Ok(())
}
