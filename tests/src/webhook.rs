//! A webhook receiver run by the test itself, listening inside a network namespace (the lab's
//! switch, where the VMs' default route goes), so an agent in a lab VM can deliver to it. Every
//! POST is answered 200 and handed to the test as it arrives.

use std::{net::SocketAddr, sync::mpsc};

use axum::{Router, body::Bytes, http::Uri};

use crate::ServerThread;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Path and query.
    pub path: String,
    /// The body, as text.
    pub body: String,
}

/// A running receiver; stopped when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    rx: mpsc::Receiver<Delivery>,
    _server: ServerThread,
}

/// A listener on `ip`:`port` (0: a random port) created inside the network namespace `netns` (a
/// name under `/run/netns`); only the thread that creates it enters the namespace.
pub(crate) fn listen_in(
    netns: &str,
    ip: &str,
    port: u16,
) -> std::io::Result<std::net::TcpListener> {
    let path = format!("/run/netns/{netns}");
    let ip = ip.to_owned();
    std::thread::spawn(move || {
        let ns = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        std::net::TcpListener::bind((ip.as_str(), port))
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

impl WebhookReceiver {
    /// Starts a receiver on `ip` inside the network namespace `netns`.
    pub fn start_in(netns: &str, ip: &str) -> WebhookReceiver {
        let listener = listen_in(netns, ip, 0).expect("a listener in the namespace");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = mpsc::channel();
        let server = ServerThread::spawn("webhook-receiver", move |stop| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(Delivery {
                            path: uri.to_string(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        "ok"
                    }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        WebhookReceiver {
            addr,
            rx,
            _server: server,
        }
    }

    /// `http://IP:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received since the last call, without waiting (a delivery is recorded before
    /// it is answered, so whatever a finished sender delivered is here).
    pub fn received(&self) -> Vec<Delivery> {
        self.rx.try_iter().collect()
    }
}
