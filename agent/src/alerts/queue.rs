//! Delivery plumbing shared by every sink: a bounded [`Outbox`] (drops the oldest first and counts
//! the drops) persisted atomically under the state directory by its own task, the status each sink
//! reports ([`SinkStatus`]), retry backoff with jitter, and the worker loop of the notification
//! sinks. Producers never wait: pushing takes a short lock and wakes the worker; a slow or dead sink
//! only ever delays its own queue.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use super::notification::Notification;
pub use crate::handle::SinkStatus;
use crate::state::{load_json, write_atomic_with};

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// For people; names the host, never a URL or secret.
    pub message: String,
    /// Worth trying again later (timeouts, 5xx, 429); otherwise the item is dropped.
    pub retryable: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure retrying cannot fix.
    pub fn fatal(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            message: message.into(),
            retryable: false,
        }
    }
}

pub use crate::config::Backoff;

#[derive(Debug, Serialize, Deserialize)]
struct OutboxFile<T> {
    items: Vec<Entry<T>>,
}

/// A queued item with its queue sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry<T> {
    /// Unique within the queue.
    pub seq: u64,
    /// When it was queued (items older than the sink's maximum age are dropped).
    pub queued_at: DateTime<Utc>,
    /// The item.
    pub item: T,
}

#[derive(Debug)]
struct OutboxState<T> {
    items: VecDeque<Entry<T>>,
    next_seq: u64,
}

/// A bounded queue shared by the producer (the alerter) and one worker, persisted by its own task.
#[derive(Debug)]
pub struct Outbox<T> {
    state: Mutex<OutboxState<T>>,
    capacity: usize,
    wake: Notify,
    changed: watch::Sender<u64>,
    status: watch::Sender<SinkStatus>,
    path: PathBuf,
}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Outbox<T> {
    /// The outbox stored at `path`, with what a previous run left in it.
    pub fn load(path: PathBuf, capacity: usize, status: SinkStatus) -> Arc<Outbox<T>> {
        let items: VecDeque<Entry<T>> = match load_json::<OutboxFile<T>>(&path) {
            Ok(Some(f)) => f.items.into(),
            Ok(None) => VecDeque::new(),
            Err(e) => {
                tracing::warn!(message = "Outbox unusable; starting empty.", error = %e);
                VecDeque::new()
            }
        };
        let next_seq = items.iter().map(|e| e.seq + 1).max().unwrap_or(0);
        let mut status = status;
        status.pending = items.len();
        let (changed, _) = watch::channel(0);
        let (status, _) = watch::channel(status);
        Arc::new(Outbox {
            state: Mutex::new(OutboxState { items, next_seq }),
            capacity: capacity.max(1),
            wake: Notify::new(),
            changed,
            status,
            path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` (never waits); the oldest item goes when the queue is full.
    pub fn push(&self, item: T, now: DateTime<Utc>) {
        let (len, dropped) = {
            let mut s = self.lock();
            let seq = s.next_seq;
            s.next_seq += 1;
            s.items.push_back(Entry {
                seq,
                queued_at: now,
                item,
            });
            let mut dropped = 0;
            while s.items.len() > self.capacity {
                s.items.pop_front();
                dropped += 1;
            }
            (s.items.len(), dropped)
        };
        if dropped > 0 {
            tracing::warn!(message = "Alert queue full; oldest items dropped.", dropped);
        }
        self.status.send_modify(|st| {
            st.pending = len;
            st.dropped += dropped;
        });
        self.changed.send_modify(|v| *v += 1);
        self.wake.notify_one();
    }

    /// Drops items queued before `oldest`; returns how many.
    pub fn expire(&self, oldest: DateTime<Utc>) -> u64 {
        let (n, len) = {
            let mut s = self.lock();
            let before = s.items.len();
            s.items.retain(|e| e.queued_at >= oldest);
            ((before - s.items.len()) as u64, s.items.len())
        };
        if n > 0 {
            self.status.send_modify(|st| {
                st.pending = len;
                st.dropped += n;
            });
            self.changed.send_modify(|v| *v += 1);
        }
        n
    }

    /// Up to `n` items from the front.
    pub fn front(&self, n: usize) -> Vec<Entry<T>> {
        self.lock().items.iter().take(n).cloned().collect()
    }

    /// Removes the items with these sequence numbers (those still queued).
    pub fn remove(&self, seqs: &[u64]) {
        let len = {
            let mut s = self.lock();
            s.items.retain(|e| !seqs.contains(&e.seq));
            s.items.len()
        };
        self.status.send_modify(|st| st.pending = len);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until something is pushed (or was pushed since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The sink's status.
    pub fn status(&self) -> SinkStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every status change.
    pub fn watch_status(&self) -> watch::Receiver<SinkStatus> {
        self.status.subscribe()
    }

    /// Updates the sink's status.
    pub fn update_status(&self, f: impl FnOnce(&mut SinkStatus)) {
        self.status.send_modify(f);
    }

    /// Records a successful delivery of `n` items.
    pub fn delivered(&self, n: u64) {
        let now = Utc::now();
        self.status.send_modify(|st| {
            st.last_delivery = Some(now);
            st.delivered += n;
        });
    }

    /// Records a failure.
    pub fn failed(&self, message: &str, dropped: u64) {
        let now = Utc::now();
        self.status.send_modify(|st| {
            st.last_error = Some(message.to_owned());
            st.last_error_at = Some(now);
            st.dropped += dropped;
        });
    }

    fn snapshot_file(&self) -> OutboxFile<T> {
        OutboxFile {
            items: self.lock().items.iter().cloned().collect(),
        }
    }

    async fn persist(self: &Arc<Self>) {
        let me = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let file = me.snapshot_file();
            // Compact and streamed: a full telemetry queue is megabytes of JSON.
            write_atomic_with(&me.path, |w| {
                serde_json::to_writer(&mut *w, &file).map_err(std::io::Error::other)
            })
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                message = "Cannot save the alert outbox.",
                path = %self.path.display(),
                error = %e
            ),
            Err(e) => tracing::error!(message = "Outbox writer failed.", error = %e),
        }
    }

    /// Writes the outbox after changes, and once more when `shutdown` is cancelled. Writes are at
    /// least `min_gap` apart: the changes of that interval go out in one write of the latest
    /// content, so a sink that is down while items keep coming costs one write per `min_gap`, not
    /// one per item (a crash loses at most the last `min_gap` of changes).
    pub fn spawn_persister(
        self: &Arc<Self>,
        min_gap: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let me = self.clone();
        let mut changed = self.changed.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = changed.changed() => {
                        if r.is_err() { break; }
                        me.persist().await;
                    }
                    () = shutdown.cancelled() => break,
                }
                tokio::select! {
                    () = tokio::time::sleep(min_gap) => {}
                    () = shutdown.cancelled() => break,
                }
            }
            me.persist().await;
        })
    }
}

/// Something that delivers one notification.
pub trait Deliver: Send + Sync + 'static {
    /// Delivers `n` once (no retries: the worker retries).
    fn deliver(
        &self,
        n: &Notification,
    ) -> impl std::future::Future<Output = Result<(), DeliveryError>> + Send;
}

/// The worker of a notification sink: delivers the queue front to back, retrying with backoff,
/// dropping what is older than `max_age` or fatally rejected.
pub async fn notification_worker<D: Deliver>(
    outbox: Arc<Outbox<Notification>>,
    sink: Arc<D>,
    backoff: Backoff,
    max_age: Duration,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    loop {
        let oldest =
            Utc::now() - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        let expired = outbox.expire(oldest);
        if expired > 0 {
            tracing::warn!(message = "Undelivered notifications expired.", sink = %outbox.status().name, expired);
        }
        let Some(entry) = outbox.front(1).pop() else {
            tokio::select! {
                _ = outbox.woken() => continue,
                _ = shutdown.cancelled() => return,
            }
        };
        let result = tokio::select! {
            r = sink.deliver(&entry.item) => r,
            _ = shutdown.cancelled() => return,
        };
        let name = outbox.status().name;
        match result {
            Ok(()) => {
                attempt = 0;
                outbox.remove(&[entry.seq]);
                outbox.delivered(1);
                tracing::info!(message = "Notification delivered.", sink = %name, label = %entry.item.label);
            }
            Err(e) if !e.retryable => {
                attempt = 0;
                outbox.remove(&[entry.seq]);
                outbox.failed(&e.message, 1);
                tracing::error!(message = "Notification rejected; dropped.", sink = %name, error = %e.message);
            }
            Err(e) => {
                attempt += 1;
                outbox.failed(&e.message, 0);
                let delay = backoff.delay(attempt);
                tracing::warn!(message = "Notification not delivered; will retry.", sink = %name, error = %e.message, retry_in = ?delay);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
            let d4 = b.delay(4);
            assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8));
            let d30 = b.delay(30);
            assert!(d30 >= Duration::from_secs(30) && d30 <= Duration::from_secs(60));
        }
    }

    #[tokio::test]
    async fn bounded_drops_oldest_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox-x.json");
        let ob: Arc<Outbox<String>> =
            Outbox::load(path.clone(), 3, SinkStatus::new("x", "generic", "h"));
        let stop = CancellationToken::new();
        let persister = ob.spawn_persister(Duration::from_millis(10), stop.clone());
        let now = Utc::now();
        for i in 0..5 {
            ob.push(format!("n{i}"), now);
        }
        let items: Vec<String> = ob.front(10).into_iter().map(|e| e.item).collect();
        assert_eq!(items, ["n2", "n3", "n4"]);
        assert_eq!(ob.status().dropped, 2);
        assert_eq!(ob.status().pending, 3);
        stop.cancel();
        persister.await.unwrap();
        let again: Arc<Outbox<String>> =
            Outbox::load(path, 3, SinkStatus::new("x", "generic", "h"));
        let items: Vec<String> = again.front(10).into_iter().map(|e| e.item).collect();
        assert_eq!(items, ["n2", "n3", "n4"]);
        assert_eq!(again.status().pending, 3);
        again.push("n5".into(), now + chrono::Duration::seconds(2));
        assert_eq!(again.front(10).last().unwrap().seq, 5);
        assert_eq!(again.expire(now + chrono::Duration::seconds(1)), 2);
        assert_eq!(again.len(), 1);
    }
}
