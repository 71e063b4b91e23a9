//! Ten thousand malformed or oversized HTTP requests against the agent's real HTTP front end
//! (served in this process, alone in its own test binary so that the resident memory measured is
//! the server's): the server keeps answering and its memory stays bounded.

#[allow(dead_code)]
mod common;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use cryptobot_agent::health::Status;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
};

/// A TCP connection to `addr` from the local address `from` (any port).
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// This process's resident memory in KiB, from /proc.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The `i`th hostile request: a mix of garbage, oversized heads, absurd lengths and bad framing.
fn hostile_request(i: usize) -> Vec<u8> {
    match i % 8 {
        0 => (0..512).map(|b| ((b * 31 + i) % 256) as u8).collect(),
        1 => {
            let mut r = b"GET /health HTTP/1.1\r\nX-Big: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 64 * 1024));
            r.extend_from_slice(b"\r\n\r\n");
            r
        }
        2 => {
            let mut r = b"GET /health HTTP/1.1\r\n".to_vec();
            for h in 0..200 {
                r.extend_from_slice(format!("X-H{h}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        }
        3 => b"POST /health HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nxxxx".to_vec(),
        4 => b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n".to_vec(),
        5 => {
            let mut r = b"GET /".to_vec();
            r.extend(std::iter::repeat_n(b'%', 20 * 1024));
            r.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            r
        }
        6 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        _ => b"GET /health HTTP/9.9\r\nHost: \xff\xfe\r\n\r\n".to_vec(),
    }
}

/// Sends hostile requests `range` from addresses spread over 127.0.1.0/24, `parallel` at a time.
async fn send_hostile(addr: SocketAddr, range: std::ops::Range<usize>, parallel: usize) {
    let mut tasks = JoinSet::new();
    for i in range {
        if tasks.len() >= parallel {
            tasks.join_next().await;
        }
        tasks.spawn(async move {
            let from: IpAddr = format!("127.0.1.{}", 1 + i % 250).parse().unwrap();
            let Ok(mut stream) = connect_from(from, addr).await else {
                return;
            };
            let _ = stream.write_all(&hostile_request(i)).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_requests_leave_the_server_up_with_bounded_memory() {
    let served = common::serve_sample(Status::Healthy).await;
    let addr = served.addr;
    // Warm up the allocator and the runtime first, so the comparison is of steady states.
    send_hostile(addr, 0..1_000, 64).await;
    let before = vm_rss_kib();
    let started = Instant::now();
    send_hostile(addr, 1_000..11_000, 64).await;
    let after = vm_rss_kib();
    eprintln!(
        "10000 hostile requests in {:?}; VmRSS {before} KiB -> {after} KiB",
        started.elapsed()
    );
    let (status, _, _) = common::get(addr, "/health", &[]).await;
    assert_eq!(status, 200, "still serving");
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "resident memory grew by {} KiB",
        after - before
    );
}
