//! Azure Application Insights: custom metrics, events and availability results, sent to the
//! ingestion endpoint's Track API (`POST {IngestionEndpoint}/v2.1/track`, a JSON array of
//! envelopes).
//!
//! Each check cycle sends real metrics (`MetricData`): `health.disk_usage`, `health.memory_usage`,
//! `health.heartbeat_age`, `health.crash_count`, `health.service_active` (1/0); an
//! `AvailabilityData` result (success = HEALTHY); a `health_critical` / `health_warning` event per
//! alert. Status changes and restarts are events too. Every envelope is tagged
//! `ai.cloud.role=cryptobot-agent` and `ai.cloud.roleInstance=<hostname>`, and, once the Instance
//! Metadata Service has said who the VM is ([`imds`](super::imds)), carries its resource id as the
//! property `vm_resource_id`, so that the fleet's telemetry joins Resource Graph's inventory
//! exactly (`cryptoctl health --source telemetry`). The availability result carries the agent's
//! status word and the worker unit's state as the properties `status` and `service`.
//!
//! Delivery: batches of up to `batch_size`; 200 removes the batch; 206 (and a 500 with a readable
//! body) resends only the items whose `errors[].statusCode` is retryable (408, 429, 439, 500, 503),
//! by `index` into the sent batch, and drops the others; 408/429/439/500/503 back off
//! (exponential, with jitter) and retry the batch; 400/402/403 and other refusals drop the batch
//! and show `telemetry rejected: <the service's message>` in the sink status. The queue is bounded
//! (oldest dropped first, counted) and nothing older than `max_age` (at most 48 h) is sent.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    compact::CompactJson,
    imds,
    queue::{Entry, Outbox},
    webhook::{describe, http_client},
};
use crate::{
    config::{AppInsightsConfig, ImdsConfig},
    health::Status,
    report::Report,
};

/// The property naming the VM's resource id on every envelope.
pub const RESOURCE_ID_PROPERTY: &str = "vm_resource_id";

/// The `ai.cloud.role` of every envelope.
pub const CLOUD_ROLE: &str = "cryptobot-agent";

/// Item status codes (in a 206 or 500 body) worth sending again.
const RETRYABLE_ITEM: [u16; 5] = [408, 429, 439, 500, 503];

/// One telemetry item, without the instrumentation key (added when sent, never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryItem {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// `Metric`, `Event` or `Availability` (the envelope name's last part).
    pub kind: String,
    /// `MetricData`, `EventData`, `AvailabilityData`.
    pub base_type: String,
    /// The `baseData` object.
    pub base_data: CompactJson,
}

impl TelemetryItem {
    /// A metric data point.
    pub fn metric(name: &str, value: f64, host: &str, time: DateTime<Utc>) -> TelemetryItem {
        TelemetryItem {
            time,
            kind: "Metric".into(),
            base_type: "MetricData".into(),
            base_data: CompactJson::of(&json!({
                "ver": 2,
                "metrics": [{"name": name, "value": value, "count": 1}],
                "properties": {"host": host},
            })),
        }
    }

    /// A custom event.
    pub fn event(name: &str, properties: Map<String, Value>, time: DateTime<Utc>) -> TelemetryItem {
        TelemetryItem {
            time,
            kind: "Event".into(),
            base_type: "EventData".into(),
            base_data: CompactJson::of(
                &json!({"ver": 2, "name": name, "properties": Value::Object(properties)}),
            ),
        }
    }

    /// The health check as an availability result.
    pub fn availability(report: &Report, id: &str, time: DateTime<Utc>) -> TelemetryItem {
        let message = report
            .alerts
            .first()
            .cloned()
            .unwrap_or_else(|| "HEALTHY".to_owned());
        TelemetryItem {
            time,
            kind: "Availability".into(),
            base_type: "AvailabilityData".into(),
            base_data: CompactJson::of(&json!({
                "ver": 2,
                "id": id,
                "name": "faucet_worker health",
                "duration": format_duration(Duration::ZERO),
                "success": report.status == Status::Healthy,
                "runLocation": report.agent.hostname,
                "message": message,
                "properties": {
                    "status": report.status.as_str(),
                    "service": report.unit.as_ref().map_or("unknown", |u| u.active_state.as_str()),
                },
            })),
        }
    }

    /// The envelope as sent, with the VM's resource id among the properties when known.
    pub fn envelope_for(&self, ikey: &str, host: &str, resource_id: Option<&str>) -> Value {
        let base_data = match resource_id {
            None => serde_json::to_value(&self.base_data).unwrap_or(Value::Null),
            Some(id) => {
                let mut data = self.base_data.to_value();
                if let Some(o) = data.as_object_mut() {
                    let props = o.entry("properties").or_insert_with(|| json!({}));
                    if let Some(p) = props.as_object_mut() {
                        p.insert(RESOURCE_ID_PROPERTY.into(), id.into());
                    }
                }
                data
            }
        };
        json!({
            "ver": 1,
            "name": format!("Microsoft.ApplicationInsights.{}", self.kind),
            "time": self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "sampleRate": 100.0,
            "iKey": ikey,
            "tags": {
                "ai.cloud.role": CLOUD_ROLE,
                "ai.cloud.roleInstance": host,
                "ai.internal.sdkVersion": concat!("cryptobot-agent:", env!("CARGO_PKG_VERSION")),
            },
            "data": {"baseType": self.base_type, "baseData": base_data},
        })
    }
}

/// `DD.HH:MM:SS.MMMMMM`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{:02}.{:02}:{:02}:{:02}.{:06}",
        s / 86_400,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        d.subsec_micros()
    )
}

/// Every custom metric the agent sends, as it names them: what alert rules and dashboards may
/// query (a test checks both against this list).
pub const METRIC_NAMES: [&str; 6] = [
    "health.disk_usage",
    "health.memory_usage",
    "health.heartbeat_age",
    "health.crash_count",
    "health.service_active",
    "health.disk_full_in_hours",
];

/// The metrics of one report (a value that could not be read is not sent; the disk forecast only
/// when a watched mount has one, the soonest).
pub fn metrics(report: &Report, time: DateTime<Utc>) -> Vec<TelemetryItem> {
    let host = &report.agent.hostname;
    let [disk, memory, heartbeat, crashes, active, full_in] = METRIC_NAMES;
    let values = [
        (disk, report.disk_usage_percent.map(f64::from)),
        (memory, report.memory_usage_percent.map(f64::from)),
        (heartbeat, report.heartbeat_age_seconds.map(|v| v as f64)),
        (crashes, report.crash_count.map(f64::from)),
        (
            active,
            report.service_active.map(|a| if a { 1.0 } else { 0.0 }),
        ),
        (
            full_in,
            report
                .disks
                .iter()
                .filter_map(|d| d.forecast)
                .min()
                .map(|s| s as f64 / 3600.0),
        ),
    ];
    values
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| TelemetryItem::metric(name, v, host, time)))
        .collect()
}

/// One `health_critical` / `health_warning` event per alert of that status.
pub fn alert_events(report: &Report, time: DateTime<Utc>) -> Vec<TelemetryItem> {
    report
        .checks
        .iter()
        .filter_map(|c| {
            let name = match c.status {
                Status::Critical => "health_critical",
                Status::Warning => "health_warning",
                _ => return None,
            };
            let a = c.alert.as_ref()?;
            let mut p = Map::new();
            p.insert("alert".into(), a.text.clone().into());
            p.insert("kind".into(), a.kind.clone().into());
            p.insert("check".into(), c.name.clone().into());
            p.insert("host".into(), report.agent.hostname.clone().into());
            Some(TelemetryItem::event(name, p, time))
        })
        .collect()
}

/// The Track API's answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackResponse {
    /// Items the service read.
    #[serde(default)]
    pub items_received: u64,
    /// Items it kept.
    #[serde(default)]
    pub items_accepted: u64,
    /// Per-item errors.
    #[serde(default)]
    pub errors: Vec<TrackError>,
}

/// One item's error.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackError {
    /// Index into the sent batch.
    pub index: usize,
    /// The item's status.
    pub status_code: u16,
    /// Why.
    #[serde(default)]
    pub message: String,
}

/// What to do with a sent batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// All accepted.
    Accepted,
    /// Some accepted: resend `retry` (indexes into the batch), drop the rest.
    Partial {
        /// Items to send again.
        retry: Vec<usize>,
        /// Items refused for good, with the service's message.
        rejected: Vec<(usize, String)>,
    },
    /// Nothing accepted; try the whole batch again later.
    Retry(String),
    /// Refused for good (the message says why).
    Rejected(String),
}

/// Sends batches to the Track API.
#[derive(Debug)]
pub struct TrackClient {
    client: Result<reqwest::Client, super::queue::DeliveryError>,
    url: String,
    host: String,
    ikey: super::secret::Secret,
    role_instance: String,
    timeout: Duration,
    identity: tokio::sync::Mutex<imds::Identity>,
}

impl TrackClient {
    /// A client for this configuration; `role_instance` is the machine's host name.
    pub fn new(config: &AppInsightsConfig, role_instance: &str) -> TrackClient {
        let url = config.connection.track_url();
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "ingestion endpoint".into());
        TrackClient {
            client: http_client(config.timeout),
            url,
            host,
            ikey: config.connection.instrumentation_key.clone(),
            role_instance: role_instance.to_owned(),
            timeout: config.timeout,
            identity: tokio::sync::Mutex::new(imds::Identity::new(None, Duration::from_secs(2))),
        }
    }

    /// Reads the VM's resource id from IMDS as `config` says (see [`imds::endpoint`]).
    pub fn with_imds(mut self, config: &ImdsConfig) -> TrackClient {
        self.identity =
            tokio::sync::Mutex::new(imds::Identity::new(imds::endpoint(config), config.timeout));
        self
    }

    /// Asks IMDS for the VM's resource id when that is due (before the first batch, then spaced
    /// out until it answers).
    pub async fn refresh_identity(&self) {
        self.identity.lock().await.refresh().await;
    }

    /// The VM's resource id, once IMDS has said it.
    pub async fn resource_id(&self) -> Option<String> {
        self.identity.lock().await.resource_id().map(str::to_owned)
    }

    /// The ingestion host (for status outputs).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends one batch.
    pub async fn send(&self, items: &[TelemetryItem]) -> BatchOutcome {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return BatchOutcome::Retry(e.message.clone()),
        };
        let resource_id = self.resource_id().await;
        let body: Vec<Value> = items
            .iter()
            .map(|i| {
                i.envelope_for(
                    self.ikey.expose(),
                    &self.role_instance,
                    resource_id.as_deref(),
                )
            })
            .collect();
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return BatchOutcome::Rejected(format!("cannot encode: {e}")),
        };
        let response = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let text = format!("{}: {}", self.host, describe(e, self.timeout));
                return BatchOutcome::Retry(self.ikey.scrub(&text));
            }
        };
        let status = response.status().as_u16();
        let parsed: Option<TrackResponse> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        // The service's messages are shown in the status: make sure they cannot carry the key.
        match classify(status, parsed.as_ref(), items.len(), &self.host) {
            BatchOutcome::Partial { retry, rejected } => BatchOutcome::Partial {
                retry,
                rejected: rejected
                    .into_iter()
                    .map(|(i, m)| (i, self.ikey.scrub(&m)))
                    .collect(),
            },
            BatchOutcome::Retry(m) => BatchOutcome::Retry(self.ikey.scrub(&m)),
            BatchOutcome::Rejected(m) => BatchOutcome::Rejected(self.ikey.scrub(&m)),
            BatchOutcome::Accepted => BatchOutcome::Accepted,
        }
    }
}

/// The outcome of a response with `status` and (if readable) `body` to a batch of `n` items.
pub fn classify(status: u16, body: Option<&TrackResponse>, n: usize, host: &str) -> BatchOutcome {
    let first_message = || {
        body.and_then(|b| b.errors.first())
            .map(|e| e.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("HTTP {status} from {host}"))
    };
    let per_item = |b: &TrackResponse| {
        let mut retry = Vec::new();
        let mut rejected = Vec::new();
        for e in &b.errors {
            if e.index >= n {
                continue;
            }
            if RETRYABLE_ITEM.contains(&e.status_code) {
                retry.push(e.index);
            } else {
                rejected.push((e.index, e.message.clone()));
            }
        }
        retry.sort_unstable();
        retry.dedup();
        BatchOutcome::Partial { retry, rejected }
    };
    match status {
        200 => BatchOutcome::Accepted,
        206 => match body {
            Some(b) if b.items_received == b.items_accepted && b.errors.is_empty() => {
                BatchOutcome::Accepted
            }
            Some(b) => per_item(b),
            None => BatchOutcome::Retry(format!("{host}: HTTP 206 without a readable body")),
        },
        500 => match body {
            Some(b) if !b.errors.is_empty() => per_item(b),
            _ => BatchOutcome::Retry(format!("{host}: HTTP 500")),
        },
        408 | 429 | 439 | 503 => BatchOutcome::Retry(format!("{host}: HTTP {status}")),
        _ => BatchOutcome::Rejected(first_message()),
    }
}

/// The telemetry worker: sends the outbox in batches until `shutdown`.
pub async fn worker(
    outbox: Arc<Outbox<TelemetryItem>>,
    client: Arc<TrackClient>,
    config: AppInsightsConfig,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    loop {
        let max_age = chrono::Duration::from_std(config.max_age).unwrap_or(chrono::Duration::MAX);
        let expired = expire_by_item_time(&outbox, Utc::now() - max_age);
        if expired > 0 {
            tracing::warn!(
                message = "Telemetry older than the maximum age dropped.",
                expired
            );
        }
        let batch: Vec<Entry<TelemetryItem>> = outbox.front(config.batch_size);
        if batch.is_empty() {
            tokio::select! {
                _ = outbox.woken() => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        let items: Vec<TelemetryItem> = batch.iter().map(|e| e.item.clone()).collect();
        tokio::select! {
            _ = client.refresh_identity() => {}
            _ = shutdown.cancelled() => return,
        }
        let outcome = tokio::select! {
            o = client.send(&items) => o,
            _ = shutdown.cancelled() => return,
        };
        let seqs = |idx: &mut dyn Iterator<Item = usize>| -> Vec<u64> {
            idx.filter_map(|i| batch.get(i).map(|e| e.seq)).collect()
        };
        let retry_later = match outcome {
            BatchOutcome::Accepted => {
                outbox.remove(&seqs(&mut (0..batch.len())));
                outbox.delivered(batch.len() as u64);
                false
            }
            BatchOutcome::Partial { retry, rejected } => {
                let done: Vec<usize> = (0..batch.len()).filter(|i| !retry.contains(i)).collect();
                outbox.remove(&seqs(&mut done.iter().copied()));
                let accepted = (done.len() - rejected.len()) as u64;
                if accepted > 0 {
                    outbox.delivered(accepted);
                }
                if let Some((_, m)) = rejected.first() {
                    outbox.failed(&format!("telemetry rejected: {m}"), rejected.len() as u64);
                }
                if !retry.is_empty() {
                    outbox.failed(
                        &format!(
                            "{} of {} telemetry items to send again",
                            retry.len(),
                            batch.len()
                        ),
                        0,
                    );
                }
                !retry.is_empty()
            }
            BatchOutcome::Retry(m) => {
                outbox.failed(&m, 0);
                true
            }
            BatchOutcome::Rejected(m) => {
                outbox.remove(&seqs(&mut (0..batch.len())));
                let text = format!("telemetry rejected: {m}");
                tracing::error!(message = "Telemetry rejected.", error = %text);
                outbox.failed(&text, batch.len() as u64);
                false
            }
        };
        if retry_later {
            attempt += 1;
            let delay = config.retry.delay(attempt);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return,
            }
        } else {
            attempt = 0;
        }
    }
}

fn expire_by_item_time(outbox: &Outbox<TelemetryItem>, oldest: DateTime<Utc>) -> u64 {
    let old: Vec<u64> = outbox
        .front(usize::MAX)
        .into_iter()
        .filter(|e| e.item.time < oldest)
        .map(|e| e.seq)
        .collect();
    if old.is_empty() {
        return 0;
    }
    outbox.remove(&old);
    outbox.update_status(|s| s.dropped += old.len() as u64);
    old.len() as u64
}

#[cfg(test)]
mod tests;
