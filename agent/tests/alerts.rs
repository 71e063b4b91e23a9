//! Alerting against real components: webhook receivers and an Application Insights ingestion
//! endpoint (HTTP servers on 127.0.0.1 inside the test), and a real SMTP server (aiosmtpd, started
//! by the test; `tests/setup.sh` installs it). The alerter is driven in-process with sample
//! snapshots; the policy is the real one and so are the sinks. Tests wait for events (a message
//! arriving, a status changing), never for a fixed time.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::{DateTime, Utc};
use cryptobot_agent::{
    alerts::{Alerter, SinkStatus, connection_string::ConnectionString, secret::Secret},
    config::{AlertsConfig, AppInsightsConfig, EmailConfig, SmtpTls, WebhookConfig, WebhookKind},
    daemon::testing::sample_snapshot,
    health::Status,
    report::Report,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{mpsc, watch},
};

/// Longest wait for something that should happen at once.
const SOON: Duration = Duration::from_secs(2);

fn report(status: Status) -> Report {
    sample_snapshot(status).report
}

fn t0() -> DateTime<Utc> {
    Utc::now()
}

fn at(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    base + chrono::Duration::seconds(secs)
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Value>, what: &str) -> Value {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing arrived within {SOON:?}"))
        .expect("receiver gone")
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver

#[derive(Clone)]
struct Hook {
    tx: mpsc::UnboundedSender<Value>,
    /// While true, requests are read and never answered (for at most 30 s).
    hang: watch::Receiver<bool>,
    status: Arc<Mutex<u16>>,
}

async fn hook_handler(State(h): State<Hook>, Json(body): Json<Value>) -> Response {
    let mut hang = h.hang.clone();
    if *hang.borrow() {
        let released = tokio::time::timeout(Duration::from_secs(30), hang.wait_for(|v| !*v));
        // Our client gives up long before; this request's answer goes nowhere.
        let _ = released.await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let status = *h.status.lock().unwrap();
    if status == 200 {
        let _ = h.tx.send(body);
    }
    StatusCode::from_u16(status).unwrap().into_response()
}

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Value>,
    hang: watch::Sender<bool>,
    status: Arc<Mutex<u16>>,
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

async fn webhook_receiver(path: &str) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let (hang, hang_rx) = watch::channel(false);
    let status = Arc::new(Mutex::new(200));
    let state = Hook {
        tx,
        hang: hang_rx,
        status: status.clone(),
    };
    let addr = serve(
        Router::new()
            .route(path, post(hook_handler))
            .with_state(state),
    )
    .await;
    Receiver {
        url: format!("http://{addr}{path}"),
        rx,
        hang,
        status,
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn webhook(name: &str, kind: WebhookKind, url: &str, timeout: Duration) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        kind,
        url: Secret::new(url),
        host: "127.0.0.1".into(),
        timeout,
    }
}

/// The label (`CRITICAL`, `RESOLVED`, ...) of a received payload of any kind.
fn label(kind: WebhookKind, v: &Value) -> String {
    let title = match kind {
        WebhookKind::Generic => return v["notification"]["label"].as_str().unwrap().to_owned(),
        WebhookKind::Slack => v["text"].as_str().unwrap().to_owned(),
        WebhookKind::Discord => v["embeds"][0]["title"].as_str().unwrap().to_owned(),
        WebhookKind::Teams => v["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    for l in ["CRITICAL", "WARNING", "RESOLVED", "FLAPPING", "TEST"] {
        if title.contains(&format!("[{l}]")) {
            return l.to_owned();
        }
    }
    panic!("no label in {title}")
}

// ---------------------------------------------------------------------------------------------
// SMTP server (aiosmtpd)

const SMTP_SERVER: &str = r#"
import email, email.header, json, sys
from aiosmtpd.controller import Controller

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content)
        body = msg.get_payload(decode=True) or b""
        subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "subject": subject, "body": body.decode("utf-8", "replace")}), flush=True)
        return "250 Message accepted"

controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
"#;

struct Smtp {
    port: u16,
    rx: mpsc::UnboundedReceiver<Value>,
    _child: tokio::process::Child,
}

async fn smtp_server() -> Smtp {
    let port = dead_port();
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", SMTP_SERVER, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 is needed for the SMTP test server (tests/setup.sh installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("aiosmtpd did not start")
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("READY"),
        "aiosmtpd did not start: is it installed (python3 -m pip install aiosmtpd)?"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Smtp {
        port,
        rx,
        _child: child,
    }
}

fn email_config(port: u16) -> EmailConfig {
    EmailConfig {
        to: vec!["ops@example.com".into()],
        from: "agent@vm1.example.com".into(),
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        user: None,
        password: None,
        timeout: Duration::from_secs(5),
    }
}

// ---------------------------------------------------------------------------------------------
// Application Insights ingestion endpoint

#[derive(Clone)]
struct Ingest {
    /// Every received batch (validated envelopes).
    tx: mpsc::UnboundedSender<Vec<Value>>,
    /// Schema violations seen.
    invalid: Arc<Mutex<Vec<String>>>,
    /// Scripted answers, in order; then 200.
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

fn validate(e: &Value) -> Result<(), String> {
    let s = |v: &Value, k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or(format!("{k} missing"))
    };
    let name = s(e, "name")?;
    let time = s(e, "time")?;
    DateTime::parse_from_rfc3339(&time).map_err(|x| format!("time {time}: {x}"))?;
    if !time.ends_with('Z') {
        return Err(format!("time {time} is not UTC"));
    }
    if s(e, "iKey")?.is_empty() {
        return Err("empty iKey".into());
    }
    if e["tags"]["ai.cloud.role"] != "cryptobot-agent" {
        return Err("ai.cloud.role".into());
    }
    if s(&e["tags"], "ai.cloud.roleInstance")?.is_empty() {
        return Err("ai.cloud.roleInstance".into());
    }
    let base = &e["data"]["baseData"];
    if !base["ver"].is_number() {
        return Err(format!("{name}: baseData.ver missing"));
    }
    match e["data"]["baseType"].as_str() {
        Some("MetricData") => {
            let m = base["metrics"].as_array().ok_or("metrics missing")?;
            if m.is_empty() {
                return Err("no metrics".into());
            }
            for p in m {
                s(p, "name")?;
                if !p["value"].is_number() {
                    return Err("metric value".into());
                }
            }
        }
        Some("EventData") => {
            s(base, "name")?;
        }
        Some("AvailabilityData") => {
            s(base, "id")?;
            s(base, "name")?;
            let d = s(base, "duration")?;
            let ok = d.len() == 18
                && d.chars().enumerate().all(|(i, c)| match i {
                    2 | 11 => c == '.',
                    5 | 8 => c == ':',
                    _ => c.is_ascii_digit(),
                });
            if !ok {
                return Err(format!("duration {d}"));
            }
            if !base["success"].is_boolean() {
                return Err("success".into());
            }
        }
        other => return Err(format!("baseType {other:?}")),
    }
    Ok(())
}

async fn track(State(i): State<Ingest>, Json(body): Json<Value>) -> Response {
    let items = body.as_array().cloned().unwrap_or_default();
    let mut bad = Vec::new();
    for e in &items {
        if let Err(why) = validate(e) {
            bad.push(format!("{why}: {e}"));
        }
    }
    if !bad.is_empty() || items.is_empty() {
        i.invalid.lock().unwrap().extend(bad);
        return (StatusCode::BAD_REQUEST, "invalid").into_response();
    }
    let n = items.len();
    let _ = i.tx.send(items);
    let next = i.script.lock().unwrap().pop_front();
    let (status, body) = next.unwrap_or((
        200,
        json!({"itemsReceived": n, "itemsAccepted": n, "errors": []}),
    ));
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

struct Ingestion {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Vec<Value>>,
    invalid: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

impl Ingestion {
    fn connection_string(&self, ikey: &str) -> String {
        format!(
            "InstrumentationKey={ikey};IngestionEndpoint=http://{}/;LiveEndpoint=https://unused.example/",
            self.addr
        )
    }

    fn config(&self, ikey: &str) -> AppInsightsConfig {
        AppInsightsConfig {
            connection: ConnectionString::parse(&self.connection_string(ikey)).unwrap(),
            interval: Duration::from_secs(60),
            batch_size: 100,
            queue_size: 1000,
            max_age: Duration::from_secs(48 * 3600),
            timeout: Duration::from_secs(5),
            retry: cryptobot_agent::alerts::queue::Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
            },
        }
    }

    async fn batch(&mut self) -> Vec<Value> {
        tokio::time::timeout(SOON, self.rx.recv())
            .await
            .expect("no telemetry batch arrived")
            .unwrap()
    }

    fn assert_valid(&self) {
        let bad = self.invalid.lock().unwrap();
        assert!(bad.is_empty(), "schema violations: {bad:#?}");
    }
}

async fn ingestion() -> Ingestion {
    let (tx, rx) = mpsc::unbounded_channel();
    let invalid = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let state = Ingest {
        tx,
        invalid: invalid.clone(),
        script: script.clone(),
    };
    let addr = serve(
        Router::new()
            .route("/v2.1/track", post(track))
            .with_state(state),
    )
    .await;
    Ingestion {
        addr,
        rx,
        invalid,
        script,
    }
}

// ---------------------------------------------------------------------------------------------

fn base_config() -> AlertsConfig {
    let mut c = AlertsConfig::default();
    c.retry.initial = Duration::from_millis(50);
    c.retry.max = Duration::from_millis(200);
    c
}

async fn wait_status(alerter: &Alerter, name: &str, what: &str, f: impl Fn(&SinkStatus) -> bool) {
    let mut rx = alerter
        .watch_sinks()
        .into_iter()
        .find(|r| r.borrow().name == name)
        .unwrap_or_else(|| panic!("no sink {name}"));
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        rx.wait_for(|s| f(s)).await.is_ok()
    })
    .await;
    assert!(
        matches!(done, Ok(true)),
        "{name}: {what}: {:?}",
        alerter.sinks()
    );
}

#[tokio::test]
async fn one_critical_per_sink_no_early_reminder_one_resolved() {
    let state = tempfile::tempdir().unwrap();
    let kinds = [
        WebhookKind::Slack,
        WebhookKind::Discord,
        WebhookKind::Teams,
        WebhookKind::Generic,
    ];
    let mut hooks = Vec::new();
    let mut config = base_config();
    for k in kinds {
        let r = webhook_receiver("/hook").await;
        config
            .webhooks
            .push(webhook(k.as_str(), k, &r.url, Duration::from_secs(5)));
        hooks.push((k, r));
    }
    let mut smtp = smtp_server().await;
    config.email = Some(email_config(smtp.port));
    let alerter = Alerter::start(&config, state.path(), "vm1");

    let start = t0();
    alerter.observe(&report(Status::Healthy), false, start);
    // the worker stops
    let began = Instant::now();
    alerter.observe(&report(Status::Critical), false, at(start, 60));
    assert!(
        began.elapsed() < Duration::from_millis(100),
        "observe waited"
    );
    for (k, r) in &mut hooks {
        let v = recv(&mut r.rx, k.as_str()).await;
        assert_eq!(label(*k, &v), "CRITICAL", "{k:?}: {v}");
    }
    let mail = recv(&mut smtp.rx, "email").await;
    assert_eq!(mail["subject"], "[CRITICAL] Cryptobot Health Alert");
    assert_eq!(mail["to"], json!(["ops@example.com"]));
    let body = mail["body"].as_str().unwrap();
    for needle in [
        "Status: CRITICAL",
        "Service Active: No",
        "Service Running: No",
        "Crash Count: 0",
        "Disk Usage: 41%",
        "Memory Usage: 22%",
        "Heartbeat Age: 3s",
        "Service is not",
    ] {
        assert!(body.contains(needle), "{needle:?} in {body}");
    }

    // still down: no reminder before repeat_interval (4 h), one at 4 h
    for secs in [120, 3600, 4 * 3600 + 59] {
        alerter.observe(&report(Status::Critical), false, at(start, secs));
    }
    alerter.observe(&report(Status::Critical), false, at(start, 4 * 3600 + 60));
    // recovery
    alerter.observe(&report(Status::Healthy), false, at(start, 4 * 3600 + 120));
    alerter.observe(&report(Status::Healthy), false, at(start, 4 * 3600 + 180));
    for (k, r) in &mut hooks {
        // each sink delivers in order: the next ones are the reminder, then RESOLVED
        let reminder = recv(&mut r.rx, k.as_str()).await;
        assert_eq!(label(*k, &reminder), "CRITICAL");
        if *k == WebhookKind::Generic {
            assert_eq!(reminder["notification"]["kind"], "reminder");
            assert_eq!(reminder["status"], "CRITICAL", "the full report is there");
        }
        let resolved = recv(&mut r.rx, k.as_str()).await;
        assert_eq!(label(*k, &resolved), "RESOLVED", "{k:?}: {resolved}");
    }
    let reminder = recv(&mut smtp.rx, "email").await;
    assert_eq!(reminder["subject"], "[CRITICAL] Cryptobot Health Alert");
    assert!(
        reminder["body"]
            .as_str()
            .unwrap()
            .contains("still CRITICAL")
    );
    let resolved = recv(&mut smtp.rx, "email").await;
    assert_eq!(resolved["subject"], "[RESOLVED] Cryptobot Health Alert");

    assert!(alerter.flush(SOON).await);
    for (k, r) in &mut hooks {
        assert!(r.rx.try_recv().is_err(), "{k:?}: more than expected");
    }
    assert!(smtp.rx.try_recv().is_err(), "email: more than expected");
    for s in alerter.sinks() {
        assert_eq!(s.delivered, 3, "{s:?}");
        assert!(s.last_delivery.is_some() && s.last_error.is_none(), "{s:?}");
    }
    alerter.shutdown().await;
}

#[tokio::test]
async fn slack_payload_uses_slack_bold() {
    let state = tempfile::tempdir().unwrap();
    let mut r = webhook_receiver("/services/T0/B0/x").await;
    let mut config = base_config();
    config.webhooks.push(webhook(
        "slack",
        WebhookKind::Slack,
        &r.url,
        Duration::from_secs(5),
    ));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    alerter.observe(&report(Status::Warning), false, t0());
    let v = recv(&mut r.rx, "slack").await;
    let a = &v["attachments"][0];
    assert_eq!(a["color"], "#FFA500");
    assert_eq!(a["title"], "⚠️ Cryptobot Health Alert");
    let text = a["text"].as_str().unwrap();
    assert!(
        text.starts_with("⚠️ *Cryptobot Health Alert - WARNING*"),
        "{text}"
    );
    assert!(!text.contains("**"), "{text}");
    assert!(text.contains("*Heartbeat Age:* 412s"), "{text}");
    alerter.shutdown().await;
}

#[tokio::test]
async fn flapping_sends_one_flapping_notice() {
    let state = tempfile::tempdir().unwrap();
    let mut r = webhook_receiver("/hook").await;
    let mut config = base_config();
    config.policy.flapping_changes = 3;
    config.policy.flapping_window = Duration::from_secs(600);
    config.policy.flapping_stable_after = Duration::from_secs(300);
    config.webhooks.push(webhook(
        "generic",
        WebhookKind::Generic,
        &r.url,
        Duration::from_secs(5),
    ));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let start = t0();
    alerter.observe(&report(Status::Healthy), false, start);
    for i in 1..=9 {
        let s = if i % 2 == 1 {
            Status::Critical
        } else {
            Status::Healthy
        };
        alerter.observe(&report(s), false, at(start, i * 10));
    }
    // stable (CRITICAL since the 9th change) for flapping_stable_after: one notice where it settled
    alerter.observe(&report(Status::Critical), false, at(start, 90 + 300));
    let mut labels = Vec::new();
    for _ in 0..5 {
        labels.push(label(
            WebhookKind::Generic,
            &recv(&mut r.rx, "generic").await,
        ));
    }
    assert_eq!(
        labels,
        ["CRITICAL", "RESOLVED", "CRITICAL", "FLAPPING", "CRITICAL"]
    );
    assert!(alerter.flush(SOON).await);
    assert!(r.rx.try_recv().is_err());
    alerter.shutdown().await;
}

#[tokio::test]
async fn a_hanging_webhook_delays_only_itself() {
    let state = tempfile::tempdir().unwrap();
    let mut slow = webhook_receiver("/slow").await;
    let mut fast = webhook_receiver("/fast").await;
    let mut smtp = smtp_server().await;
    slow.hang.send_replace(true);
    let mut config = base_config();
    // the shape of production (10 s timeout, a server silent for 30 s), made fast
    config.webhooks.push(webhook(
        "slow",
        WebhookKind::Generic,
        &slow.url,
        Duration::from_millis(500),
    ));
    config.webhooks.push(webhook(
        "fast",
        WebhookKind::Generic,
        &fast.url,
        Duration::from_secs(5),
    ));
    config.email = Some(email_config(smtp.port));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let began = Instant::now();
    alerter.observe(&report(Status::Critical), false, t0());
    assert!(
        began.elapsed() < Duration::from_millis(100),
        "observe waited"
    );
    let v = recv(&mut fast.rx, "fast").await;
    assert_eq!(v["notification"]["label"], "CRITICAL");
    let m = recv(&mut smtp.rx, "email").await;
    assert_eq!(m["subject"], "[CRITICAL] Cryptobot Health Alert");
    // the slow sink has timed out at least once, and says so with its host only
    wait_status(&alerter, "slow", "a timeout", |s| s.last_error.is_some()).await;
    let st = alerter
        .sinks()
        .into_iter()
        .find(|s| s.name == "slow")
        .unwrap();
    let err = st.last_error.unwrap();
    assert!(err.starts_with("127.0.0.1: no answer within"), "{err}");
    assert!(!err.contains("/slow"), "{err}");
    assert_eq!(st.pending, 1);
    // the sink comes back: the notification arrives, once
    slow.hang.send_replace(false);
    let v = recv_within(&mut slow.rx, Duration::from_secs(10)).await;
    assert_eq!(v["notification"]["label"], "CRITICAL");
    assert!(alerter.flush(SOON).await);
    assert!(slow.rx.try_recv().is_err());
    assert!(fast.rx.try_recv().is_err());
    alerter.shutdown().await;
}

async fn recv_within(rx: &mut mpsc::UnboundedReceiver<Value>, d: Duration) -> Value {
    tokio::time::timeout(d, rx.recv())
        .await
        .expect("nothing arrived")
        .unwrap()
}

#[tokio::test]
async fn undelivered_notifications_survive_an_alerter_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config.webhooks.push(webhook(
        "ops",
        WebhookKind::Generic,
        &format!("http://127.0.0.1:{}/hook", dead_port()),
        Duration::from_secs(2),
    ));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let start = t0();
    alerter.observe(&report(Status::Critical), false, start);
    wait_status(&alerter, "ops", "a failed attempt", |s| {
        s.last_error.is_some()
    })
    .await;
    let err = alerter.sinks()[0].last_error.clone().unwrap();
    assert!(err.starts_with("127.0.0.1: cannot connect"), "{err}");
    alerter.shutdown().await;
    let outbox = state.path().join("alerts/outbox-ops.json");
    assert!(
        std::fs::read_to_string(&outbox)
            .unwrap()
            .contains("CRITICAL"),
        "persisted"
    );

    // the sink is back (same name, its endpoint moved), the agent starts again
    let mut r = webhook_receiver("/hook").await;
    config.webhooks[0] = webhook("ops", WebhookKind::Generic, &r.url, Duration::from_secs(2));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    assert_eq!(alerter.sinks()[0].pending, 1);
    // the persisted policy state knows CRITICAL was told: observing it again adds nothing
    alerter.observe(&report(Status::Critical), false, at(start, 60));
    let v = recv(&mut r.rx, "ops").await;
    assert_eq!(v["notification"]["label"], "CRITICAL");
    alerter.observe(&report(Status::Healthy), false, at(start, 120));
    let v = recv(&mut r.rx, "ops").await;
    assert_eq!(v["notification"]["label"], "RESOLVED");
    assert!(alerter.flush(SOON).await);
    assert!(r.rx.try_recv().is_err());
    alerter.shutdown().await;
}

#[tokio::test]
async fn expired_notifications_are_not_sent_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config.max_age = Duration::from_millis(1);
    config.webhooks.push(webhook(
        "ops",
        WebhookKind::Generic,
        &format!("http://127.0.0.1:{}/hook", dead_port()),
        Duration::from_secs(2),
    ));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    alerter.observe(&report(Status::Critical), false, t0());
    wait_status(&alerter, "ops", "expired", |s| {
        s.dropped == 1 && s.pending == 0
    })
    .await;
    alerter.shutdown().await;
}

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

/// Captures the alerter's log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_logs_status_or_errors() {
    const HOOK_SECRET: &str = "planted-webhook-secret-81c4";
    const SMTP_SECRET: &str = "planted-smtp-secret-5d2e";
    const IKEY: &str = "planted-ikey-secret-9f17";
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let state = tempfile::tempdir().unwrap();
    let mut ing = ingestion().await;
    // the service's message echoes the key: it must still not show
    ing.script.lock().unwrap().push_back((
        400,
        json!({"itemsReceived": 1, "itemsAccepted": 0, "errors": [
            {"index": 0, "statusCode": 400, "message": format!("Invalid instrumentation key {IKEY}")}]}),
    ));
    let failing = webhook_receiver(&format!("/services/{HOOK_SECRET}")).await;
    *failing.status.lock().unwrap() = 404;
    let smtp = smtp_server().await;
    let mut config = base_config();
    config.webhooks.push(webhook(
        "dead",
        WebhookKind::Slack,
        &format!("http://127.0.0.1:{}/services/{HOOK_SECRET}", dead_port()),
        Duration::from_secs(2),
    ));
    config.webhooks.push(webhook(
        "refusing",
        WebhookKind::Discord,
        &failing.url,
        Duration::from_secs(2),
    ));
    let mut email = email_config(smtp.port);
    email.user = Some("agent".into());
    email.password = Some(Secret::new(SMTP_SECRET));
    config.email = Some(email);
    config.appinsights = Some(ing.config(IKEY));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    alerter.observe(&report(Status::Critical), false, t0());
    for name in ["dead", "refusing", "email", "appinsights"] {
        wait_status(&alerter, name, "an error", |s| s.last_error.is_some()).await;
    }
    let _ = ing.batch().await;
    let results = alerter.test(&report(Status::Healthy)).await;
    assert!(
        results
            .iter()
            .all(|r| r.error.is_some() || r.sink == "appinsights"),
        "{results:?}"
    );
    let mut shown = String::new();
    shown.push_str(&String::from_utf8_lossy(&logs.0.lock().unwrap()));
    shown.push_str(&format!("{results:?}"));
    shown.push_str(&format!("{:?}", alerter.sinks()));
    let mut snap = sample_snapshot(Status::Critical);
    snap.daemon.sinks = alerter.sinks();
    shown.push_str(&snap.to_json());
    shown.push_str(&format!("{config:?}"));
    shown.push_str(&format!("{alerter:?}"));
    for secret in [HOOK_SECRET, SMTP_SECRET, IKEY] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    let refusing = alerter
        .sinks()
        .into_iter()
        .find(|s| s.name == "refusing")
        .unwrap();
    assert_eq!(
        refusing.last_error.as_deref(),
        Some("127.0.0.1: HTTP 404 Not Found")
    );
    assert!(shown.contains("telemetry rejected: Invalid instrumentation key <redacted>"));
    alerter.shutdown().await;
}

#[tokio::test]
async fn alert_test_reports_each_sink() {
    let state = tempfile::tempdir().unwrap();
    let mut ok = webhook_receiver("/ok").await;
    let mut ing = ingestion().await;
    let mut config = base_config();
    config.webhooks.push(webhook(
        "ok",
        WebhookKind::Teams,
        &ok.url,
        Duration::from_secs(2),
    ));
    config.webhooks.push(webhook(
        "down",
        WebhookKind::Generic,
        &format!("http://127.0.0.1:{}/x", dead_port()),
        Duration::from_secs(2),
    ));
    config.appinsights = Some(ing.config("00000000-0000-0000-0000-000000000001"));
    let alerter = Alerter::start(&config, state.path(), "vm1");
    let results = alerter.test(&report(Status::Healthy)).await;
    let by = |n: &str| results.iter().find(|r| r.sink == n).unwrap().error.clone();
    assert_eq!(by("ok"), None);
    assert!(by("down").unwrap().contains("cannot connect"));
    assert_eq!(by("appinsights"), None);
    let v = recv(&mut ok.rx, "ok").await;
    assert_eq!(label(WebhookKind::Teams, &v), "TEST");
    let batch = ing.batch().await;
    assert_eq!(batch[0]["data"]["baseData"]["name"], "cryptobot_agent_test");
    alerter.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The command line

fn agent_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[state]\ndir = {:?}\n[deadlines]\nservice = \"1s\"\njournal = \"1s\"\n{extra}",
            dir.join("state").display().to_string()
        ),
    )
    .unwrap();
    path
}

async fn agent(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cryptobot-agent"))
        .args(args)
        .env_remove("ALERT_WEBHOOK_URL")
        .env_remove("CRYPTOBOT_ALERT_WEBHOOK")
        .env_remove("ALERT_EMAIL")
        .env_remove("APPLICATIONINSIGHTS_CONNECTION_STRING")
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn cli_alert_test_prints_per_sink_and_fails_if_any_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ok = webhook_receiver("/ok").await;
    let dead = dead_port();
    let path = agent_config(
        dir.path(),
        &format!(
            "[[alerts.webhook]]\nname = \"good\"\nkind = \"generic\"\nurl = \"{}\"\n[[alerts.webhook]]\nname = \"bad\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{dead}/services/planted-cli-secret\"\ntimeout = \"2s\"\n",
            ok.url
        ),
    );
    let out = agent(&["--config", path.to_str().unwrap(), "alert", "test"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("good (generic, 127.0.0.1): delivered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad (slack, 127.0.0.1): FAILED: 127.0.0.1: cannot connect"),
        "{stdout}"
    );
    assert!(!stdout.contains("planted") && !stderr.contains("planted"));
    let v = recv(&mut ok.rx, "good").await;
    assert_eq!(v["notification"]["kind"], "test");
    assert_eq!(
        v["notification"]["subject"],
        "[TEST] Cryptobot Health Alert"
    );
}

#[tokio::test]
async fn cli_check_alert_from_cron_does_not_repeat_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = webhook_receiver("/hook").await;
    let path = agent_config(
        dir.path(),
        &format!(
            "[alerts]\ncheck_wait = \"5s\"\n[[alerts.webhook]]\nkind = \"generic\"\nurl = \"{}\"\n",
            r.url
        ),
    );
    let cfg = path.to_str().unwrap();
    // there is no system bus here: the service check is UNKNOWN, which is worth telling
    let out = agent(&["--config", cfg, "check", "--alert"]).await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let v = recv(&mut r.rx, "first run").await;
    let first = v["notification"]["label"].as_str().unwrap().to_owned();
    assert_ne!(first, "RESOLVED");
    assert_eq!(v["notification"]["kind"], "problem");
    // the next cron run sees the same status: nothing is sent
    let out = agent(&["--config", cfg, "check", "--alert"]).await;
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        r.rx.try_recv().is_err(),
        "the second run notified again: {:?}",
        out
    );
    assert!(dir.path().join("state/alert_state.json").exists());
}
