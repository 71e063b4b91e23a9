//! The local commands' connection to the running agent: gRPC over the agent's unix socket.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cryptobot_proto::v1::agent_client::AgentClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::{
    Code,
    transport::{Channel, Endpoint, Uri},
};

use crate::cli::EXIT_FAILURE;

/// Exit code of a local command when the agent cannot be reached (the status is unknown).
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code of a local command the agent declined.
pub const EXIT_REFUSED: u8 = 1;

/// How long connecting to the socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take (a restart waits for the worker to come up).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a local command could not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("cannot reach the agent at {}: {reason} (is cryptobot-agent running?)", socket.display())]
    Unreachable {
        /// The socket that was tried.
        socket: PathBuf,
        /// What went wrong, with its causes.
        reason: String,
    },
    /// The agent answered with an error.
    #[error("the agent at {} answered: {}", socket.display(), status.message())]
    Rpc {
        /// The agent's socket.
        socket: PathBuf,
        /// The gRPC status.
        status: tonic::Status,
    },
}

impl ClientError {
    /// The command's exit code: 3 when the agent is unreachable or going away, 1 when it refused,
    /// 70 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
            ClientError::Rpc { status, .. } => match status.code() {
                Code::Unavailable => EXIT_UNREACHABLE,
                Code::FailedPrecondition => EXIT_REFUSED,
                _ => EXIT_FAILURE,
            },
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A gRPC channel to whatever serves on the unix socket `socket` (the agent's API and health).
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = socket.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    });
    // The URI only names the authority sent in requests; the connector ignores it.
    Endpoint::from_static("http://cryptobot-agent")
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_with_connector(connector)
        .await
}

/// A connected client of the agent listening on `socket`.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    inner: AgentClient<Channel>,
}

impl Client {
    /// Connects to the agent's unix socket.
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        let channel = unix_channel(socket)
            .await
            .map_err(|e| ClientError::Unreachable {
                socket: socket.to_owned(),
                // tonic's own "transport error" says nothing; its cause does.
                reason: std::error::Error::source(&e).map_or_else(|| e.to_string(), chain),
            })?;
        Ok(Client {
            socket: socket.to_owned(),
            inner: AgentClient::new(channel),
        })
    }

    /// The generated client, for calls; map its errors with [`Client::error`].
    pub fn rpc(&mut self) -> &mut AgentClient<Channel> {
        &mut self.inner
    }

    /// A failed call as a [`ClientError`] naming the socket.
    pub fn error(&self, status: tonic::Status) -> ClientError {
        ClientError::Rpc {
            socket: self.socket.clone(),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_is_unreachable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let e = Client::connect(&socket).await.unwrap_err();
        assert_eq!(e.exit_code(), EXIT_UNREACHABLE);
        let text = e.to_string();
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }

    #[test]
    fn exit_codes_follow_the_status() {
        let rpc = |status| ClientError::Rpc {
            socket: "/s".into(),
            status,
        };
        assert_eq!(
            rpc(tonic::Status::unavailable("x")).exit_code(),
            EXIT_UNREACHABLE
        );
        assert_eq!(
            rpc(tonic::Status::failed_precondition("x")).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(rpc(tonic::Status::internal("x")).exit_code(), EXIT_FAILURE);
    }
}
