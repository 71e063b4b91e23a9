//! Slowloris against the agent's real HTTP front end (served in this process with the default
//! limits): 500 slow or silent connections from 127.0.0.2 do not keep `/health` from answering a
//! client on 127.0.0.1 within 100 ms. Malformed requests are in `http_hostile_memory.rs`.

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
use tokio_util::sync::CancellationToken;

/// Slow connections held open by the attacker at once.
const SLOW_CLIENTS: usize = 500;
/// Longest acceptable `/health` answer while under attack.
const HEALTH_BUDGET: Duration = Duration::from_millis(100);

/// A TCP connection to `addr` from the local address `from` (any port).
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// One slowloris client: connects from 127.0.0.2 and sends a request head one byte at a time,
/// every `pace` (or nothing at all when `silent`), reconnecting whenever the server closes the
/// connection, until `stop`.
/// Says once on `connected` when its first connection is open.
async fn slowloris(
    addr: SocketAddr,
    silent: bool,
    pace: Duration,
    stop: CancellationToken,
    connected: tokio::sync::mpsc::Sender<()>,
) {
    let head = b"GET /health HTTP/1.1\r\nHost: agent\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    // Bounded in count as well as in time.
    for _ in 0..1_000 {
        let Ok(mut stream) = connect_from("127.0.0.2".parse().unwrap(), addr).await else {
            return;
        };
        let _ = connected.try_send(());
        let mut sent = 0;
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                read = stream.read(&mut buf) => match read {
                    // closed or refused by the server: come back a second later
                    Ok(0) | Err(_) => {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        break;
                    }
                    Ok(_) => {}
                },
                () = tokio::time::sleep(pace), if !silent && sent < head.len() => {
                    if stream.write_all(&head[sent..=sent]).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
            }
        }
    }
}

/// `GET /health` from 127.0.0.1 on a fresh connection; the status code and how long it took.
async fn timed_health(addr: SocketAddr) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _, _) = common::get(addr, "/health", &[]).await;
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_slow_clients_do_not_starve_health() {
    let served = common::serve_sample(Status::Healthy).await;
    let addr = served.addr;
    let stop = CancellationToken::new();
    let (connected_tx, mut connected) = tokio::sync::mpsc::channel(SLOW_CLIENTS * 1_000);
    // The attackers run on a runtime of their own, as another process would.
    let attack = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut attackers = JoinSet::new();
                for i in 0..SLOW_CLIENTS {
                    attackers.spawn(slowloris(
                        addr,
                        i % 2 == 0,
                        Duration::from_millis(150),
                        stop.clone(),
                        connected_tx.clone(),
                    ));
                }
                drop(connected_tx);
                while attackers.join_next().await.is_some() {}
            });
        })
    };
    for _ in 0..SLOW_CLIENTS {
        tokio::time::timeout(Duration::from_secs(20), connected.recv())
            .await
            .expect("the attackers connect")
            .expect("the attackers connect");
    }
    // Measure while the attack runs, over more than one header timeout (2 s by default), so the
    // attackers' reconnections are part of it.
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    let mut samples = 0;
    while Instant::now() < until {
        let (status, took) = timed_health(addr).await;
        assert_eq!(status, 200);
        worst = worst.max(took);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    attack.join().unwrap();
    eprintln!("{samples} /health requests under attack, slowest {worst:?}");
    assert!(
        worst < HEALTH_BUDGET,
        "/health took {worst:?} with {SLOW_CLIENTS} slow clients (budget {HEALTH_BUDGET:?})"
    );
}
