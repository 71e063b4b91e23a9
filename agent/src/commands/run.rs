//! `cryptobot-agent run` (also `--daemon`): the long-running agent, until SIGTERM or SIGINT.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::{config::Config, daemon};

pub(super) async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(message = "SIGTERM received, stopping."),
            _ = int.recv() => tracing::info!(message = "SIGINT received, stopping."),
        }
        trigger.cancel();
    });
    daemon::run(config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
