//! Follows the worker unit over D-Bus: subscribes to systemd's signals and forwards every
//! `PropertiesChanged` of the unit, so a crash is seen at once instead of at the next poll. A lost
//! connection is reported and re-established with backoff (250 ms doubling to 5 s).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zbus::Connection;

use crate::systemd;

/// What the watcher tells the supervisor.
#[derive(Debug)]
pub enum BusEvent {
    /// A (new) connection; the unit's state should be re-read.
    Connected(Connection),
    /// The unit's properties changed.
    Changed,
    /// No connection, and why.
    Lost(String),
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Runs until `shutdown`.
pub async fn watch(unit: String, events: mpsc::Sender<BusEvent>, shutdown: CancellationToken) {
    let mut retry = FIRST_RETRY;
    loop {
        let attempt = async {
            let conn = systemd::connect().await?;
            let stream = systemd::watch_unit(&conn, &unit).await?;
            Ok::<_, systemd::SystemdError>((conn, stream))
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = attempt => outcome,
        };
        match outcome {
            Ok((conn, mut stream)) => {
                retry = FIRST_RETRY;
                if events
                    .send(BusEvent::Connected(conn.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = conn.closed() => break,
                        item = stream.next() => match item {
                            // A refresh is already queued when the channel is full.
                            Some(_) => { let _ = events.try_send(BusEvent::Changed); }
                            None => break,
                        },
                    }
                }
                if events
                    .send(BusEvent::Lost("connection to the system bus lost".into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                if events.send(BusEvent::Lost(e.to_string())).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}
