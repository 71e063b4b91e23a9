//! Shared by the alerting tests: webhook receivers, an Application Insights ingestion endpoint
//! (HTTP servers on 127.0.0.1 inside the test), a real SMTP server (aiosmtpd, started by the test;
//! `tests/setup.sh` installs it), sample reports and configurations; it re-exports what the tests
//! import.

#![allow(dead_code, unused_imports)]

pub use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
pub use chrono::{DateTime, Utc};
pub use cryptobot_agent::{
    alerts::{Alerter, SinkStatus, connection_string::ConnectionString, secret::Secret},
    config::{AlertsConfig, AppInsightsConfig, EmailConfig, SmtpTls, WebhookConfig, WebhookKind},
    daemon::testing::sample_snapshot,
    health::Status,
    report::Report,
};
pub use serde_json::{Value, json};
pub use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{mpsc, watch},
};

/// Longest wait for something that should happen at once.
pub const SOON: Duration = Duration::from_secs(2);

pub fn report(status: Status) -> Report {
    sample_snapshot(status).report
}

pub fn t0() -> DateTime<Utc> {
    Utc::now()
}

pub fn at(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    base + chrono::Duration::seconds(secs)
}

pub async fn recv(rx: &mut mpsc::UnboundedReceiver<Value>, what: &str) -> Value {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing arrived within {SOON:?}"))
        .expect("receiver gone")
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver

#[derive(Clone)]
pub struct Hook {
    pub tx: mpsc::UnboundedSender<Value>,
    /// While true, requests are read and never answered (for at most 30 s).
    pub hang: watch::Receiver<bool>,
    pub status: Arc<Mutex<u16>>,
}

pub async fn hook_handler(State(h): State<Hook>, Json(body): Json<Value>) -> Response {
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

pub struct Receiver {
    pub url: String,
    pub rx: mpsc::UnboundedReceiver<Value>,
    pub hang: watch::Sender<bool>,
    pub status: Arc<Mutex<u16>>,
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

pub async fn webhook_receiver(path: &str) -> Receiver {
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
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn webhook(name: &str, kind: WebhookKind, url: &str, timeout: Duration) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        kind,
        url: Secret::new(url),
        host: "127.0.0.1".into(),
        timeout,
    }
}

/// The label (`CRITICAL`, `RESOLVED`, ...) of a received payload of any kind.
pub fn label(kind: WebhookKind, v: &Value) -> String {
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

pub const SMTP_SERVER: &str = r#"
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

pub struct Smtp {
    pub port: u16,
    pub rx: mpsc::UnboundedReceiver<Value>,
    pub _child: tokio::process::Child,
}

pub async fn smtp_server() -> Smtp {
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

pub fn email_config(port: u16) -> EmailConfig {
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
pub struct Ingest {
    /// Every received batch (validated envelopes).
    pub tx: mpsc::UnboundedSender<Vec<Value>>,
    /// Schema violations seen.
    pub invalid: Arc<Mutex<Vec<String>>>,
    /// Scripted answers, in order; then 200.
    pub script: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

pub fn validate(e: &Value) -> Result<(), String> {
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

pub async fn track(State(i): State<Ingest>, Json(body): Json<Value>) -> Response {
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

pub struct Ingestion {
    pub addr: SocketAddr,
    pub rx: mpsc::UnboundedReceiver<Vec<Value>>,
    pub invalid: Arc<Mutex<Vec<String>>>,
    pub script: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

impl Ingestion {
    pub fn connection_string(&self, ikey: &str) -> String {
        format!(
            "InstrumentationKey={ikey};IngestionEndpoint=http://{}/;LiveEndpoint=https://unused.example/",
            self.addr
        )
    }

    pub fn config(&self, ikey: &str) -> AppInsightsConfig {
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

    pub async fn batch(&mut self) -> Vec<Value> {
        tokio::time::timeout(SOON, self.rx.recv())
            .await
            .expect("no telemetry batch arrived")
            .unwrap()
    }

    pub fn assert_valid(&self) {
        let bad = self.invalid.lock().unwrap();
        assert!(bad.is_empty(), "schema violations: {bad:#?}");
    }
}

pub async fn ingestion() -> Ingestion {
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

pub fn base_config() -> AlertsConfig {
    let mut c = AlertsConfig::default();
    c.retry.initial = Duration::from_millis(50);
    c.retry.max = Duration::from_millis(200);
    c
}

pub async fn wait_status(
    alerter: &Alerter,
    name: &str,
    what: &str,
    f: impl Fn(&SinkStatus) -> bool,
) {
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
