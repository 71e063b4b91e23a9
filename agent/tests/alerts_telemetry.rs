//! Application Insights telemetry against an ingestion endpoint served in the test (127.0.0.1):
//! the envelopes' names and values, partial success, throttling, an invalid key and the 48-hour
//! cap.

mod alerts_common;

use alerts_common::*;

#[tokio::test]
async fn metric_envelopes_carry_the_five_names_with_their_values() {
    let state = tempfile::tempdir().unwrap();
    let mut ing = ingestion().await;
    let mut config = base_config();
    config.appinsights = Some(ing.config("00000000-0000-0000-0000-000000000001"));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let start = t0();
    alerter.observe(&report(Status::Critical), false, start);
    let batch = ing.batch().await;
    ing.assert_valid();
    let metrics: Vec<(String, f64)> = batch
        .iter()
        .filter(|e| e["data"]["baseType"] == "MetricData")
        .map(|e| {
            let p = &e["data"]["baseData"]["metrics"][0];
            (
                p["name"].as_str().unwrap().to_owned(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        metrics,
        [
            ("health.disk_usage".to_owned(), 41.0),
            ("health.memory_usage".to_owned(), 22.0),
            ("health.heartbeat_age".to_owned(), 3.0),
            ("health.crash_count".to_owned(), 0.0),
            ("health.service_active".to_owned(), 0.0),
        ]
    );
    let avail: Vec<&Value> = batch
        .iter()
        .filter(|e| e["data"]["baseType"] == "AvailabilityData")
        .collect();
    assert_eq!(avail.len(), 1);
    assert_eq!(avail[0]["data"]["baseData"]["success"], false);
    assert!(
        batch
            .iter()
            .any(|e| e["data"]["baseData"]["name"] == "health_critical")
    );
    for e in &batch {
        assert_eq!(e["tags"]["ai.cloud.role"], "cryptobot-agent");
        assert_eq!(e["tags"]["ai.cloud.roleInstance"], "vm1");
        assert_eq!(e["iKey"], "00000000-0000-0000-0000-000000000001");
    }
    // a transition is an event; metrics are not sent again before the interval
    alerter.observe(&report(Status::Healthy), false, at(start, 5));
    let batch = ing.batch().await;
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(
        batch[0]["data"]["baseData"]["name"],
        "health_status_changed"
    );
    assert_eq!(batch[0]["data"]["baseData"]["properties"]["to"], "HEALTHY");
    // metrics are sent while paused (notifications are not)
    alerter.observe(&report(Status::Healthy), true, at(start, 65));
    let batch = ing.batch().await;
    assert!(batch.iter().any(|e| e["data"]["baseType"] == "MetricData"));
    ing.assert_valid();
    alerter.shutdown().await;
}

#[tokio::test]
async fn partial_success_resends_only_the_failed_items_and_throttling_retries() {
    let state = tempfile::tempdir().unwrap();
    let mut ing = ingestion().await;
    ing.script.lock().unwrap().extend([
        (
            206,
            json!({"itemsReceived": 7, "itemsAccepted": 5, "errors": [
                {"index": 1, "statusCode": 429, "message": "Too many requests"},
                {"index": 3, "statusCode": 400, "message": "Field 'name' is invalid"}
            ]}),
        ),
        (
            429,
            json!({"itemsReceived": 1, "itemsAccepted": 0, "errors": []}),
        ),
    ]);
    let mut config = base_config();
    config.appinsights = Some(ing.config("00000000-0000-0000-0000-000000000001"));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    alerter.observe(&report(Status::Critical), false, t0());
    let first = ing.batch().await;
    assert!(first.len() >= 7, "{}", first.len());
    // only item 1 (429) comes again: first refused with 429 as a whole, then accepted
    let second = ing.batch().await;
    assert_eq!(second, vec![first[1].clone()]);
    let third = ing.batch().await;
    assert_eq!(third, second);
    wait_status(&alerter, "appinsights", "all sent", |s| s.pending == 0).await;
    let st = alerter.sinks().pop().unwrap();
    assert_eq!(st.dropped, 1, "{st:?}");
    assert_eq!(st.delivered as usize, first.len() - 1, "{st:?}");
    assert!(ing.rx.try_recv().is_err());
    ing.assert_valid();
    alerter.shutdown().await;
}

#[tokio::test]
async fn an_invalid_key_shows_in_the_sink_status() {
    let state = tempfile::tempdir().unwrap();
    let mut ing = ingestion().await;
    ing.script.lock().unwrap().push_back((
        400,
        json!({"itemsReceived": 1, "itemsAccepted": 0, "errors": [
            {"index": 0, "statusCode": 400, "message": "Invalid instrumentation key"}]}),
    ));
    let mut config = base_config();
    config.appinsights = Some(ing.config("00000000-0000-0000-0000-00000000dead"));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    alerter.observe(&report(Status::Healthy), false, t0());
    let batch = ing.batch().await;
    wait_status(&alerter, "appinsights", "the rejection", |s| {
        s.last_error.is_some()
    })
    .await;
    let st = alerter.sinks().pop().unwrap();
    assert_eq!(
        st.last_error.as_deref(),
        Some("telemetry rejected: Invalid instrumentation key")
    );
    assert_eq!(st.dropped as usize, batch.len());
    assert_eq!(st.pending, 0);
    // the daemon's status output carries it
    let mut snap = sample_snapshot(Status::Healthy);
    snap.daemon.sinks = alerter.sinks();
    assert!(
        snap.to_json()
            .contains("telemetry rejected: Invalid instrumentation key")
    );
    alerter.shutdown().await;
}

#[tokio::test]
async fn nothing_older_than_48_hours_is_sent() {
    let state = tempfile::tempdir().unwrap();
    let mut ing = ingestion().await;
    let mut config = base_config();
    config.appinsights = Some(ing.config("00000000-0000-0000-0000-000000000001"));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let now = t0();
    alerter.observe(&report(Status::Healthy), false, at(now, -49 * 3600));
    alerter.observe(&report(Status::Healthy), false, now);
    let batch = ing.batch().await;
    for e in &batch {
        let t = DateTime::parse_from_rfc3339(e["time"].as_str().unwrap()).unwrap();
        assert!(
            now - t.with_timezone(&Utc) < chrono::Duration::hours(48),
            "{e}"
        );
    }
    assert!(!batch.is_empty());
    alerter.shutdown().await;
}
