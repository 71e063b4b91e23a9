//! `GET`/`HEAD /health`: 200 when the worker is healthy, 503 otherwise, with the original body
//! (`status`, `timestamp`, and `alerts` when unhealthy) plus `ApplicationHealthState` for the Azure
//! Application Health extension's rich health mode.

use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::AppState;
use crate::handle::Snapshot;

/// The answer for the latest snapshot, serialised once: load balancers ask far more often than
/// snapshots change.
#[derive(Debug, Default)]
pub(crate) struct HealthCache(Mutex<Option<(Arc<Snapshot>, StatusCode, Bytes)>>);

impl HealthCache {
    /// The status code and JSON body for `snapshot`, from the cache when it is the same snapshot.
    fn answer(&self, snapshot: Arc<Snapshot>) -> (StatusCode, Bytes) {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((of, code, body)) = cached.as_ref()
            && Arc::ptr_eq(of, &snapshot)
        {
            return (*code, body.clone());
        }
        let (code, body) = health_body(&snapshot);
        let body = Bytes::from(body.to_string());
        *cached = Some((snapshot, code, body.clone()));
        (code, body)
    }
}

/// The handler: reads the latest snapshot, never probes.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let (code, body) = state.health.answer(state.handle.snapshot());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The status code and body for a snapshot.
pub(crate) fn health_body(snapshot: &Snapshot) -> (StatusCode, Value) {
    let report = &snapshot.report;
    let status = report.status.as_str().to_ascii_lowercase();
    let timestamp = report
        .timestamp
        .to_rfc3339_opts(SecondsFormat::Micros, false);
    if snapshot.is_serving() {
        (
            StatusCode::OK,
            json!({
                "status": status,
                "timestamp": timestamp,
                "ApplicationHealthState": "Healthy",
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": status,
                "timestamp": timestamp,
                "alerts": report.alerts,
                "ApplicationHealthState": "Unhealthy",
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{daemon::testing::sample_snapshot, health::Status};

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn healthy_is_200_with_the_original_keys() {
        let snapshot = sample_snapshot(Status::Healthy);
        let (code, body) = health_body(&snapshot);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            keys(&body),
            ["status", "timestamp", "ApplicationHealthState"]
        );
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["ApplicationHealthState"], "Healthy");
        let report: Value = serde_json::from_str(&snapshot.report.to_json()).unwrap();
        assert_eq!(body["timestamp"], report["timestamp"]);
    }

    #[test]
    fn every_other_status_is_503_with_alerts() {
        for (status, word) in [
            (Status::Warning, "warning"),
            (Status::Critical, "critical"),
            (Status::Unknown, "unknown"),
        ] {
            let snapshot = sample_snapshot(status);
            let (code, body) = health_body(&snapshot);
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{word}");
            assert_eq!(
                keys(&body),
                ["status", "timestamp", "alerts", "ApplicationHealthState"]
            );
            assert_eq!(body["status"], word);
            assert_eq!(body["ApplicationHealthState"], "Unhealthy");
            let alerts = body["alerts"].as_array().unwrap();
            assert!(!alerts.is_empty(), "{word}: {body}");
            assert_eq!(alerts.len(), snapshot.report.alerts.len());
        }
    }
}
