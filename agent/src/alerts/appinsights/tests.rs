//! The Application Insights sink against plain values: metrics, the disk forecast, envelopes (with
//! and without the VM's resource id) and the Track API's answers.

use super::*;
use crate::daemon::testing::sample_snapshot;

#[test]
fn duration_format() {
    assert_eq!(format_duration(Duration::ZERO), "00.00:00:00.000000");
    assert_eq!(
        format_duration(Duration::from_micros(90_061_000_123)),
        "01.01:01:01.000123"
    );
}

#[test]
fn five_metrics_with_values() {
    let r = sample_snapshot(Status::Critical).report;
    let m = metrics(&r, Utc::now());
    let got: Vec<(String, f64)> = m
        .iter()
        .map(|i| {
            let data = i.base_data.to_value();
            let p = &data["metrics"][0];
            (
                p["name"].as_str().unwrap().to_owned(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("health.disk_usage".to_owned(), 41.0),
            ("health.memory_usage".to_owned(), 22.0),
            ("health.heartbeat_age".to_owned(), 3.0),
            ("health.crash_count".to_owned(), 0.0),
            ("health.service_active".to_owned(), 0.0),
        ]
    );
    let e = m[0].envelope_for("KEY", "vm1", None);
    assert_eq!(e["name"], "Microsoft.ApplicationInsights.Metric");
    assert_eq!(e["tags"]["ai.cloud.role"], "cryptobot-agent");
    assert_eq!(e["tags"]["ai.cloud.roleInstance"], "vm1");
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn the_soonest_disk_forecast_is_sent_in_hours() {
    let mut r = sample_snapshot(Status::Healthy).report;
    let mut other = r.disks[0].clone();
    other.mount = "/data".into();
    other.forecast = Some(5 * 3600);
    r.disks[0].forecast = Some(30 * 3600);
    r.disks.push(other);
    let m = metrics(&r, Utc::now());
    let data = m.last().unwrap().base_data.to_value();
    assert_eq!(data["metrics"][0]["name"], "health.disk_full_in_hours");
    assert_eq!(data["metrics"][0]["value"], 5.0);
}

#[test]
fn classify_responses() {
    let body = |json: &str| serde_json::from_str::<TrackResponse>(json).unwrap();
    assert_eq!(classify(200, None, 3, "h"), BatchOutcome::Accepted);
    let b = body(
        r#"{"itemsReceived":4,"itemsAccepted":1,"errors":[{"index":1,"statusCode":429,"message":"slow down"},{"index":2,"statusCode":400,"message":"bad field"},{"index":3,"statusCode":500,"message":"oops"}]}"#,
    );
    assert_eq!(
        classify(206, Some(&b), 4, "h"),
        BatchOutcome::Partial {
            retry: vec![1, 3],
            rejected: vec![(2, "bad field".into())]
        }
    );
    let b = body(
        r#"{"itemsReceived":1,"itemsAccepted":0,"errors":[{"index":0,"statusCode":400,"message":"Invalid instrumentation key"}]}"#,
    );
    assert_eq!(
        classify(400, Some(&b), 1, "h"),
        BatchOutcome::Rejected("Invalid instrumentation key".into())
    );
    assert!(matches!(
        classify(429, None, 1, "h"),
        BatchOutcome::Retry(_)
    ));
    assert!(matches!(
        classify(439, None, 1, "h"),
        BatchOutcome::Retry(_)
    ));
    assert!(matches!(
        classify(503, None, 1, "h"),
        BatchOutcome::Retry(_)
    ));
    assert!(matches!(
        classify(500, None, 1, "h"),
        BatchOutcome::Retry(_)
    ));
    assert!(matches!(
        classify(402, None, 1, "h"),
        BatchOutcome::Rejected(_)
    ));
    assert!(matches!(
        classify(403, None, 1, "h"),
        BatchOutcome::Rejected(_)
    ));
}

#[test]
fn the_resource_id_goes_on_every_envelope_once_known() {
    let r = sample_snapshot(Status::Healthy).report;
    let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
    let m = &metrics(&r, Utc::now())[0];
    let e = m.envelope_for("K", "vm1", Some(id));
    let props = &e["data"]["baseData"]["properties"];
    assert_eq!(props[RESOURCE_ID_PROPERTY], id);
    assert_eq!(props["host"], r.agent.hostname.as_str());
    assert!(
        m.envelope_for("K", "vm1", None)["data"]["baseData"]["properties"][RESOURCE_ID_PROPERTY]
            .is_null()
    );
    let a = TelemetryItem::availability(&r, "id", Utc::now());
    let e = a.envelope_for("K", "vm1", Some(id));
    let props = &e["data"]["baseData"]["properties"];
    assert_eq!(props["status"], "HEALTHY");
    assert!(props["service"].is_string());
    assert_eq!(props[RESOURCE_ID_PROPERTY], id);
}
