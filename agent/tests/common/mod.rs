//! Shared by the HTTP integration tests: the agent's HTTP front end served in-process over a
//! sample snapshot, a minimal HTTP/1.1 GET, and a check that an external tool is installed.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use cryptobot_agent::{
    config::Config,
    daemon::testing::sample_snapshot,
    handle::{ControlRequest, Snapshot, test_handle},
    health::Status,
    http::serve,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_util::sync::CancellationToken;

/// The server of one test; shut down when dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    _snapshots: watch::Sender<Arc<Snapshot>>,
    _controls: mpsc::Receiver<ControlRequest>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves a sample snapshot with this status on 127.0.0.1 and a free port.
pub async fn serve_sample(status: Status) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle, snapshots, controls) = test_handle(sample_snapshot(status));
    let shutdown = CancellationToken::new();
    let config = Config::default().http;
    tokio::spawn(serve(listener, handle, config, shutdown.clone()));
    Served {
        addr,
        shutdown,
        _snapshots: snapshots,
        _controls: controls,
    }
}

/// `GET path` with extra headers; returns the status, the response head and the body.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).expect("the answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head.to_owned(), body.to_owned())
}

/// The path of `tool` in `PATH`; a missing tool fails the test with what to install.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "{tool} is not installed (not found in PATH): install the Debian package \
                 {package}, e.g. with tests/setup.sh"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
