//! In-process tests of the HTTP front end: a real listener on 127.0.0.1:0, raw HTTP/1.1 over TCP.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, extract::ConnectInfo, http::Request};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinHandle,
    time::timeout,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::*;
use crate::{
    config::HttpConfig,
    daemon::testing::sample_snapshot,
    handle::{ControlRequest, Snapshot, test_handle},
    health::Status,
};

/// Guard against a hung test; every wait below is for an event, this only bounds it.
const PATIENCE: Duration = Duration::from_secs(10);

fn config() -> HttpConfig {
    HttpConfig {
        listen: None,
        token: None,
        public: false,
        max_connections: 16,
        max_connections_per_ip: 16,
        header_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
    }
}

struct Server {
    addr: SocketAddr,
    snapshots: watch::Sender<Arc<Snapshot>>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    _controls: mpsc::Receiver<ControlRequest>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(status: Status, config: HttpConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle, snapshots, controls) = test_handle(sample_snapshot(status));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, handle, config, shutdown.clone()));
    Server {
        addr,
        snapshots,
        shutdown,
        task,
        _controls: controls,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Writes `request` and reads until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut out = Vec::new();
    timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the server neither answered nor closed")?;
    Ok(out)
}

async fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    parse(&exchange(addr, req.as_bytes()).await.unwrap())
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[]).await
}

/// Reads one response with a `Content-Length` from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a full response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let reply = parse(&buf);
            let length: usize = reply.header("content-length").unwrap().parse().unwrap();
            if buf.len() >= end + 4 + length {
                return reply;
            }
        }
    }
}

#[tokio::test]
async fn health_follows_the_published_snapshot() {
    let server = start(Status::Healthy, config()).await;
    let reply = get(server.addr, "/health").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["ApplicationHealthState"], "Healthy");

    server
        .snapshots
        .send(Arc::new(sample_snapshot(Status::Critical)))
        .unwrap();
    let reply = get(server.addr, "/health").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["status"], "critical");
    assert_eq!(body["ApplicationHealthState"], "Unhealthy");
    assert!(
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "Service is not active"),
        "{body}"
    );

    server
        .snapshots
        .send(Arc::new(sample_snapshot(Status::Unknown)))
        .unwrap();
    let body = get(server.addr, "/health").await.json();
    assert_eq!(body["status"], "unknown");
}

#[tokio::test]
async fn head_and_query_strings() {
    let server = start(Status::Healthy, config()).await;
    let head = request(server.addr, "HEAD", "/health", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "", "HEAD has no body");
    let get_reply = get(server.addr, "/health").await;
    assert_eq!(
        head.header("content-length"),
        get_reply.header("content-length")
    );

    let reply = get(server.addr, "/health?source=azure&x=%20y").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "healthy");

    server
        .snapshots
        .send(Arc::new(sample_snapshot(Status::Warning)))
        .unwrap();
    let head = request(server.addr, "HEAD", "/health?probe", &[]).await;
    assert_eq!(head.status, 503);
    assert_eq!(head.body, "");
    assert_eq!(request(server.addr, "HEAD", "/", &[]).await.status, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let server = start(Status::Healthy, config()).await;
    let reply = get(server.addr, "/nope/../x?y=1").await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["error"], "not found");
    assert_eq!(body["path"], "/nope/../x");

    for (method, path) in [("POST", "/health"), ("DELETE", "/metrics"), ("PUT", "/")] {
        let reply = request(server.addr, method, path, &[("Content-Length", "0")]).await;
        assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
        let body = reply.json();
        assert_eq!(body["error"], "method not allowed");
        assert_eq!(body["method"], method);
        assert_eq!(body["path"], path);
    }
}

#[tokio::test]
async fn metrics_negotiates_json_and_prometheus() {
    let server = start(Status::Warning, config()).await;
    let reply = get(server.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("vary"), Some("Accept"));
    let expected = server.snapshots.borrow().to_json();
    assert_eq!(reply.body.trim_end(), expected);
    let body = reply.json();
    assert_eq!(body["status"], "WARNING");
    assert!(body.get("daemon").is_some());
    assert!(reply.body.contains("\n  \"timestamp\""), "2-space indent");

    let reply = request(
        server.addr,
        "GET",
        "/metrics",
        &[("Accept", "text/plain;version=0.0.4")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{reply:?}"
    );
    assert!(
        reply
            .body
            .contains("cryptobot_status{status=\"warning\"} 1")
    );
    assert!(!reply.body.contains("# EOF"));

    let reply = request(
        server.addr,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
    )
    .await;
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{reply:?}"
    );
    assert!(reply.body.ends_with("# EOF\n"));

    let reply = request(server.addr, "GET", "/metrics", &[("Accept", "*/*")]).await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn status_page_names_the_real_port() {
    let server = start(Status::Critical, config()).await;
    let reply = get(server.addr, "/").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(reply.body.contains(">CRITICAL</div>"));
    let port = server.addr.port();
    assert!(
        reply
            .body
            .contains(&format!("curl -i http://127.0.0.1:{port}/health")),
        "{}",
        reply.body
    );
}

/// The access middleware as wired into the router, with a peer address TCP on loopback cannot give.
#[tokio::test]
async fn access_rules_are_applied_to_requests() {
    let app = |token: Option<&str>| {
        let (handle, _, _) = test_handle(sample_snapshot(Status::Healthy));
        let mut config = config();
        config.token = token.map(str::to_owned);
        router(AppState {
            handle,
            config: Arc::new(config),
            local_addr: "127.0.0.1:8080".parse().unwrap(),
            health: Arc::default(),
        })
    };
    let call = |router: axum::Router, peer: &str, path: &str, auth: Option<&str>| {
        let mut req = Request::get(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        router.oneshot(req)
    };
    let remote = "10.0.0.5:40000";
    let token = "0123456789abcdef-secret";

    let r = call(app(None), remote, "/metrics", None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = call(app(None), remote, "/", None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = call(app(None), remote, "/health", None).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = call(app(None), "127.0.0.1:40000", "/metrics", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = call(app(Some(token)), remote, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = call(app(Some(token)), remote, "/", Some("Bearer nope"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let auth = format!("Bearer {token}");
    let r = call(app(Some(token)), remote, "/metrics", Some(&auth))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(app(Some(token)), "[::1]:40000", "/", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
/// The timeout layer (tower's) reports an elapsed request as an error; this is the answer it gets.
async fn the_timeout_layers_error_is_answered_408() {
    let response = errors::timed_out(Box::new(tower::timeout::error::Elapsed::new())).await;
    assert_eq!(response.status(), 408);
}

#[tokio::test]
async fn garbage_never_breaks_the_server() {
    let server = start(Status::Healthy, config()).await;
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let huge_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20 * 1024));
    let many_headers = format!(
        "GET /health HTTP/1.1\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /health HTTP/9.9\r\n\r\n".to_vec(),
        b"G\xc3\x28T /health HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nzz\r\n".to_vec(),
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            .to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        huge_header.into_bytes(),
        huge_uri.into_bytes(),
        many_headers.into_bytes(),
    ];
    for case in &cases {
        let shown = String::from_utf8_lossy(&case[..case.len().min(40)]).into_owned();
        // The server may also reset a connection it refuses to read further: also fine.
        let Ok(raw) = exchange(server.addr, case).await else {
            continue;
        };
        if raw.is_empty() {
            continue;
        }
        let reply = parse(&raw);
        assert!(
            (400..500).contains(&reply.status),
            "{shown:?} got {}",
            reply.status
        );
    }
    let reply = get(server.addr, "/health").await;
    assert_eq!(reply.status, 200, "still serving after garbage");
    assert!(!server.task.is_finished());
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let mut cfg = config();
    cfg.header_timeout = Duration::from_millis(300);
    let server = start(Status::Healthy, cfg).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let closed = timeout(PATIENCE, stream.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the connection is still open");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains(" 200 "), "{text}");

    // An idle keep-alive connection is closed the same way.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    let mut rest = Vec::new();
    let closed = timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection is still open");
}

#[tokio::test]
async fn connections_beyond_a_limit_are_refused_at_once() {
    let mut cfg = config();
    cfg.max_connections = 2;
    cfg.max_connections_per_ip = 1;
    let server = start(Status::Healthy, cfg).await;

    // The first connection is served and stays open (keep-alive), holding 127.0.0.1's only slot.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut first).await.status, 200);

    // A second one from the same address is answered 429 and closed without waiting.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    let mut out = Vec::new();
    timeout(PATIENCE, second.read_to_end(&mut out))
        .await
        .expect("the refused connection is closed")
        .ok();
    assert!(
        out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 429"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Another address still gets the remaining global slot.
    let third = tokio::net::TcpSocket::new_v4().unwrap();
    third.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut third = third.connect(server.addr).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut third).await.status, 200);

    // Both global slots are taken now: a fourth address is refused with 503.
    let fourth = tokio::net::TcpSocket::new_v4().unwrap();
    fourth.bind("127.0.0.4:0".parse().unwrap()).unwrap();
    let mut fourth = fourth.connect(server.addr).await.unwrap();
    let mut out = Vec::new();
    timeout(PATIENCE, fourth.read_to_end(&mut out))
        .await
        .expect("the refused connection is closed")
        .ok();
    assert!(
        out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Once the first closes, its address is served again.
    drop(first);
    wait_for_free_slot(server.addr).await;
}

/// Retries `GET /health` from 127.0.0.1 until it is served (the closed connection's slot is freed
/// when the server notices the close, an event this side cannot observe directly).
async fn wait_for_free_slot(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = timeout(PATIENCE, stream.read_to_end(&mut out)).await;
        if String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutdown_closes_connections_and_returns() {
    let mut server = start(Status::Healthy, config()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);

    server.shutdown.cancel();
    let result = timeout(PATIENCE, &mut server.task)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");

    let mut rest = Vec::new();
    let n = timeout(PATIENCE, idle.read_to_end(&mut rest))
        .await
        .expect("the kept-alive connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still listening"
    );
}
