//! The gRPC API: `cryptobot.agent.v1.Agent` and `grpc.health.v1.Health`, on the unix socket (full
//! API, no token) and optionally on TCP (mutating RPCs need the bearer token).
//!
//! The daemon binds the listeners before it reports READY ([`bind_unix`], or a
//! `tokio::net::TcpListener`) and hands them to [`serve_unix`] / [`serve_tcp`], which run until the
//! shutdown token fires. Requests are small (at most [`MAX_MESSAGE_BYTES`]), each connection gets a
//! bounded number of concurrent streams, unary calls have a deadline, and shutdown is graceful but
//! bounded by [`SHUTDOWN_GRACE`].

pub mod agent_service;
pub mod auth;
pub mod convert;
pub mod health;
pub mod socket;

use std::{io, time::Duration};

use cryptobot_proto::v1::agent_server::AgentServer;
use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

pub use agent_service::AgentService;
pub use auth::Access;
pub use socket::bind_unix;

use crate::handle::AgentHandle;

/// The fully qualified name of the agent's own service, also registered in health.
pub const AGENT_SERVICE: &str = cryptobot_proto::v1::agent_server::SERVICE_NAME;

/// Largest request message accepted; bigger ones are refused (OUT_OF_RANGE, naming the limit).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest time a unary call may take. A restart waits for systemd and the worker to come up,
/// which the supervisor bounds well below this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Most streams (calls) open at once on one connection.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// How long in-flight calls may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Largest header block accepted.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Serves the full API on the unix socket; the socket's permissions are the access control.
pub async fn serve_unix(
    listener: UnixListener,
    handle: AgentHandle,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    serve(unix_incoming(listener), handle, Access::Local, shutdown).await
}

/// Serves the API on TCP. Read-only RPCs and health are open; Restart, Pause, Resume and
/// ResetBackoff need `authorization: Bearer <token>`, and are refused when `token` is `None`.
pub async fn serve_tcp(
    listener: TcpListener,
    handle: AgentHandle,
    token: Option<String>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    serve(
        tcp_incoming(listener),
        handle,
        Access::Token(token),
        shutdown,
    )
    .await
}

async fn serve<I, IO>(
    incoming: I,
    handle: AgentHandle,
    access: Access,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    I: Stream<Item = io::Result<IO>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    // Streams and the health follower stop with the server, whichever way it ends.
    let stop = shutdown.child_token();
    let _stop_on_return = stop.clone().drop_guard();
    let health = health::service(&handle, stop.clone()).await;
    let agent = AgentServer::new(AgentService::new(handle, access, stop.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let server = Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health)
        .add_service(agent)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(message = "gRPC calls still running after the shutdown grace period; closing them.");
            Ok(())
        }
    }
}

/// Accepted connections. An accept error (e.g. out of file descriptors) is logged and retried
/// after a short pause instead of ending the server.
fn unix_incoming(listener: UnixListener) -> impl Stream<Item = io::Result<UnixStream>> + Send {
    futures_util::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => return Some((Ok(stream), listener)),
                Err(e) => accept_failed(&e).await,
            }
        }
    })
}

fn tcp_incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> + Send {
    futures_util::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(message = "Cannot set TCP_NODELAY.", error = %e);
                    }
                    return Some((Ok(stream), listener));
                }
                Err(e) => accept_failed(&e).await,
            }
        }
    })
}

async fn accept_failed(e: &io::Error) {
    tracing::warn!(message = "Cannot accept a gRPC connection.", error = %e);
    tokio::time::sleep(Duration::from_millis(100)).await;
}
