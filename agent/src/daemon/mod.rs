//! `cryptobot-agent run`: the long-running daemon.
//!
//! A supervisor task owns all mutable state: it follows the worker unit through systemd's D-Bus
//! signals, runs the resource checks at a fixed rate, decides restarts, and publishes one
//! [`Snapshot`] per evaluation. Front ends (HTTP, gRPC) hold an [`AgentHandle`]: they read the latest
//! snapshot and send [`Control`] requests; they never run probes.

pub mod supervisor;
#[cfg(any(test, feature = "test-hooks"))]
pub mod testing;
pub mod watcher;

pub use crate::handle::{
    AgentGone, AgentHandle, BackoffView, Control, ControlReply, ControlRequest, DaemonState, Event,
    EventKind, PauseView, Sample, Snapshot,
};

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{config::Config, sdnotify};

/// How long the front ends get to finish their work after the main loop stops.
const DRAIN: Duration = Duration::from_secs(3);

/// Runs the daemon until `shutdown` is cancelled: listeners, first check, READY, main loop,
/// STOPPING, bounded drain of the front ends. A listener that cannot be bound is an error before
/// anything else starts.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let http_listener = match config.http.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for HTTP on {addr}"))?,
        ),
        None => None,
    };
    let unix_listener =
        crate::grpc::bind_unix(&config.grpc.socket, config.grpc.socket_group.as_deref())
            .with_context(|| format!("cannot listen on {}", config.grpc.socket.display()))?;
    let tcp_listener = match config.grpc.tcp_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for gRPC on {addr}"))?,
        ),
        None => None,
    };
    let supervisor = supervisor::Supervisor::start(config.clone()).await;
    let handle = supervisor.handle();
    // Not a child of `shutdown`: the front ends keep serving until the main loop has stopped, and
    // only then drain.
    let frontends = CancellationToken::new();
    let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    if let Some(listener) = http_listener {
        let (h, c, t) = (handle.clone(), config.http.clone(), frontends.clone());
        tasks.spawn(async move {
            (
                "http",
                crate::http::serve(listener, h, c, t)
                    .await
                    .map_err(Into::into),
            )
        });
    }
    {
        let (h, t) = (handle.clone(), frontends.clone());
        tasks.spawn(async move {
            (
                "grpc (unix)",
                crate::grpc::serve_unix(unix_listener, h, t)
                    .await
                    .map_err(Into::into),
            )
        });
    }
    if let Some(listener) = tcp_listener {
        let (h, k, t) = (handle.clone(), config.grpc.token.clone(), frontends.clone());
        tasks.spawn(async move {
            (
                "grpc (tcp)",
                crate::grpc::serve_tcp(listener, h, k, t)
                    .await
                    .map_err(Into::into),
            )
        });
    }
    sdnotify::ready();
    tracing::info!(message = "Agent ready.");
    tokio::select! {
        _ = supervisor.run(shutdown.clone()) => {}
        Some(Ok((name, result))) = tasks.join_next() => {
            // A front end that stops on its own is a fault: stop the agent so systemd restarts it.
            shutdown.cancel();
            sdnotify::stopping();
            return Err(match result {
                Err(e) => e.context(format!("{name} server failed")),
                Ok(()) => anyhow::anyhow!("{name} server stopped unexpectedly"),
            });
        }
    }
    sdnotify::stopping();
    frontends.cancel();
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(message = "Front ends did not finish in time; stopping anyway.");
    }
    tracing::info!(message = "Agent stopped.");
    Ok(())
}
