//! The agent's HTTP front end: `/health` for load balancers and the Azure Application Health
//! extension, `/metrics` (JSON or the Prometheus text formats) and a status page at `/`.
//!
//! Handlers only read the latest [`Snapshot`](crate::handle::Snapshot) from the
//! [`AgentHandle`]; no request ever runs a probe. Connections are served by an accept loop of our
//! own (rather than `axum::serve`) so that every limit is explicit:
//!
//! - the loop accepts every connection at once and admits it only under two caps ([`limits`]):
//!   `max_connections` open connections in all and `max_connections_per_ip` from one client
//!   address; a connection over its address's cap is answered `429` without waiting and closed.
//!   When the server is full, the oldest connection of the address holding the most makes room
//!   for a newcomer (loopback always gets one), so slow or silent clients, even from many
//!   addresses, cannot keep `/health` from anyone else (and there is never a queue in front of the
//!   accept call that they could fill);
//! - the request head must arrive within `header_timeout` (also on idle keep-alive connections)
//!   and fit in [`MAX_HEADER_BYTES`]; hyper answers 431 or closes the connection otherwise;
//! - handling a request may take at most `request_timeout` (a tower timeout; `/health` copies a
//!   cached answer and never waits, so it is routed outside that layer);
//! - on shutdown the loop stops accepting, every connection finishes its current response and
//!   closes, and connections still open after `request_timeout` are dropped.
//!
//! Access rules live in [`access`]; every error answer is a small JSON object (module `errors`).

pub mod access;
mod chart;
mod errors;
mod health;
pub mod limits;
mod metrics;
mod page;
mod prometheus;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, Request},
    http::{HeaderValue, header},
    middleware,
    response::Response,
    routing::get,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::{config::HttpConfig, handle::AgentHandle};

/// Largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Most header fields in one request.
const MAX_HEADERS: usize = 64;

/// What every handler gets.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// Where the snapshots come from.
    pub handle: AgentHandle,
    /// Access settings.
    pub config: Arc<HttpConfig>,
    /// The address the listener is bound to (for the examples on the status page).
    pub local_addr: SocketAddr,
    /// `/health`'s answer for the latest snapshot.
    pub health: Arc<health::HealthCache>,
}

/// Serves HTTP on `listener` until `shutdown` is cancelled, then lets open connections finish
/// their current response (for at most `config.request_timeout`) and returns.
///
/// Errors of single connections are logged and never end the server; only a listener without a
/// local address is an error.
pub async fn serve(
    listener: TcpListener,
    handle: AgentHandle,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let request_timeout = config.request_timeout;
    let limits =
        limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
    let config_header_timeout = config.header_timeout;
    let router = router(AppState {
        handle,
        config: Arc::new(config),
        local_addr,
        health: Arc::default(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config_header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    tracing::info!(%local_addr, "http listening");

    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                log_connection_end(done);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let permit = match limits.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                // Best effort and never waiting: a full socket buffer just loses the answer.
                let _ = stream.try_write(refusal.answer());
                tracing::debug!(%peer, ?refusal, "http connection refused");
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        let evicted = permit.evicted();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = evicted.cancelled() => {
                    tracing::debug!(%peer, "http connection closed to make room for another client");
                    Ok(())
                }
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(request_timeout, conn.as_mut()).await {
                        Ok(result) => result,
                        Err(_) => {
                            tracing::debug!(%peer, "http connection dropped at shutdown");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(open = connections.len(), "http shutting down");
    while let Some(done) = connections.join_next().await {
        log_connection_end(done);
    }
    Ok(())
}

fn log_connection_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "http connection task failed");
    }
}

/// The routes, the access check, the request timeout and the JSON error answers.
///
/// `/health` is public and only copies a cached answer (with its own `Cache-Control`), so it is
/// added after the layers that the other paths need: it pays for neither the access middleware
/// nor a timer per request.
fn router(state: AppState) -> Router {
    let timeout = state.config.request_timeout;
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/", get(page::page))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), access::check))
        .layer(middleware::map_response(no_store))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(errors::timed_out))
                .timeout(timeout),
        )
        .route(
            "/health",
            get(health::health).fallback(errors::method_not_allowed),
        )
        .with_state(state)
}

/// Every answer describes the current moment only.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
