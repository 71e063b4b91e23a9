//! An in-process agent for the gRPC tests: the real servers on a unix socket in a temporary
//! directory and on TCP 127.0.0.1:0, over a test handle whose snapshots the test publishes, and a
//! fake supervisor that answers control requests and records them.

#![allow(dead_code)]

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use chrono::DateTime;
use cryptobot_agent::{
    daemon::testing::sample_snapshot,
    grpc,
    handle::{Control, ControlReply, Snapshot, test_handle},
    health::Status,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// The time the fake supervisor's answers are based on (the sample snapshots' time).
pub const NOW: i64 = 1_764_544_514;

/// Longest a test waits for something that should happen at once; only guards against hangs.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running in-process agent.
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub tcp: SocketAddr,
    publisher: watch::Sender<Arc<Snapshot>>,
    /// Every control request that reached the supervisor, in order.
    pub controls: mpsc::UnboundedReceiver<Control>,
    pub shutdown: CancellationToken,
    pub unix_server: JoinHandle<Result<(), tonic::transport::Error>>,
    pub tcp_server: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Whether a fake supervisor answers control requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    Running,
    Gone,
}

impl TestAgent {
    /// Serves a HEALTHY sample snapshot; TCP mutations need `token`.
    pub async fn start(token: Option<&str>) -> TestAgent {
        TestAgent::start_with(token, Supervisor::Running).await
    }

    pub async fn start_with(token: Option<&str>, supervisor: Supervisor) -> TestAgent {
        let (handle, publisher, mut requests) = test_handle(sample_snapshot(Status::Healthy));
        let (seen, controls) = mpsc::unbounded_channel();
        match supervisor {
            Supervisor::Running => {
                tokio::spawn(async move {
                    while let Some(request) = requests.recv().await {
                        let _ = seen.send(request.control.clone());
                        let _ = request.reply.send(answer(&request.control));
                    }
                });
            }
            Supervisor::Gone => drop(requests),
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run").join("agent.sock");
        let unix = grpc::bind_unix(&socket, None).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let unix_server = tokio::spawn(grpc::serve_unix(unix, handle.clone(), shutdown.clone()));
        let tcp_server = tokio::spawn(grpc::serve_tcp(
            tcp,
            handle,
            token.map(str::to_owned),
            shutdown.clone(),
        ));
        TestAgent {
            dir,
            socket,
            tcp: addr,
            publisher,
            controls,
            shutdown,
            unix_server,
            tcp_server,
        }
    }

    /// Publishes a sample snapshot with this status as the next snapshot; returns its seq.
    pub fn publish(&self, status: Status) -> u64 {
        let mut snapshot = sample_snapshot(status);
        snapshot.seq = self.publisher.borrow().seq + 1;
        let seq = snapshot.seq;
        self.publisher.send_replace(Arc::new(snapshot));
        seq
    }

    /// The snapshot the agent serves now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.publisher.borrow().clone()
    }

    pub async fn unix_channel(&self) -> Channel {
        cryptobot_agent::client::unix_channel(&self.socket)
            .await
            .unwrap()
    }

    pub async fn tcp_channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.tcp))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// The next control the supervisor received (waits for it).
    pub async fn next_control(&mut self) -> Control {
        tokio::time::timeout(PATIENCE, self.controls.recv())
            .await
            .expect("a control request reaches the supervisor")
            .expect("the supervisor is running")
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What the fake supervisor answers: a normal restart is deferred by the backoff for an hour, a
/// forced one succeeds; pauses last as asked.
pub fn answer(control: &Control) -> ControlReply {
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    match control {
        Control::Restart { force: false } => ControlReply::Deferred {
            until: now + chrono::Duration::hours(1),
        },
        Control::Restart { force: true } => ControlReply::Restarted {
            message: "faucet_worker.service is active again".into(),
        },
        Control::Pause { duration } => ControlReply::Paused {
            until: duration.map(|d| now + chrono::Duration::from_std(d).unwrap()),
        },
        Control::Resume => ControlReply::Resumed,
        Control::ResetBackoff => ControlReply::BackoffReset,
    }
}
