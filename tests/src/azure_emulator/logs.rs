//! Application Insights in the emulator: an ingestion endpoint (the Track API,
//! `POST /v2.1/track`, plain http on 127.0.0.1) that keeps every envelope it is sent, the rows
//! Application Insights makes of them (`customMetrics`, `availabilityResults`), and the few KQL
//! operators the alert rules use, with the evaluation of a log alert's condition per dimension,
//! so a test can run a rule's query on what an agent really sent.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

/// Rows of a table, column name to value.
pub type Rows = Vec<BTreeMap<String, Value>>;

/// A running ingestion endpoint (it stops with the runtime that started it).
#[derive(Debug, Clone)]
pub struct Ingestion {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    envelopes: Arc<Mutex<Vec<Value>>>,
    /// Bumped after each batch is stored, so a test can await arrivals.
    arrived: tokio::sync::watch::Sender<u64>,
}

type Received = (Arc<Mutex<Vec<Value>>>, tokio::sync::watch::Sender<u64>);

async fn track(
    State((got, arrived)): State<Received>,
    Json(batch): Json<Vec<Value>>,
) -> Json<Value> {
    let n = batch.len();
    got.lock().expect("envelopes").extend(batch);
    arrived.send_modify(|c| *c += 1);
    Json(json!({"itemsReceived": n, "itemsAccepted": n, "errors": []}))
}

impl Ingestion {
    /// Starts one on the current tokio runtime.
    pub async fn start() -> Ingestion {
        let envelopes: Arc<Mutex<Vec<Value>>> = Arc::default();
        let arrived = tokio::sync::watch::Sender::new(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("address");
        let app = Router::new()
            .route("/v2.1/track", post(track))
            .with_state((envelopes.clone(), arrived.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ingestion {
            addr,
            envelopes,
            arrived,
        }
    }

    /// A connection string pointing here.
    pub fn connection_string(&self) -> String {
        format!(
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://{}/",
            self.addr
        )
    }

    /// Waits (at most `timeout`) until the envelopes received satisfy `done`; returns them.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut arrivals = self.arrived.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while !done(&self.envelopes()) {
                if arrivals.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        self.envelopes()
    }

    /// Every envelope received so far.
    pub fn envelopes(&self) -> Vec<Value> {
        self.envelopes.lock().expect("envelopes").clone()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a Unix time in milliseconds (the agent's envelope time format,
/// which orders as text the way it orders in time).
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // civil date from days since 1970-01-01 (proleptic Gregorian)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The rows Application Insights makes of the envelopes: `customMetrics` (one per `MetricData`
/// point) and `availabilityResults`, with `cloud_RoleName`/`cloud_RoleInstance` from the
/// envelope's `ai.cloud.role`/`ai.cloud.roleInstance` tags.
pub fn tables(envelopes: &[Value]) -> BTreeMap<&'static str, Vec<BTreeMap<String, Value>>> {
    let mut t: BTreeMap<&'static str, Vec<BTreeMap<String, Value>>> = BTreeMap::new();
    for e in envelopes {
        let mut row = BTreeMap::new();
        row.insert("timestamp".to_owned(), e["time"].clone());
        row.insert(
            "cloud_RoleName".to_owned(),
            e["tags"]["ai.cloud.role"].clone(),
        );
        row.insert(
            "cloud_RoleInstance".to_owned(),
            e["tags"]["ai.cloud.roleInstance"].clone(),
        );
        let base = &e["data"]["baseData"];
        match e["data"]["baseType"].as_str() {
            Some("MetricData") => {
                for m in base["metrics"].as_array().unwrap() {
                    let mut r = row.clone();
                    r.insert("name".into(), m["name"].clone());
                    r.insert("value".into(), m["value"].clone());
                    t.entry("customMetrics").or_default().push(r);
                }
            }
            Some("AvailabilityData") => {
                row.insert("name".into(), base["name"].clone());
                row.insert("success".into(), base["success"].clone());
                t.entry("availabilityResults").or_default().push(row);
            }
            _ => {}
        }
    }
    t
}

/// `ago(10m)` / `ago(2d)` as of `now`.
fn ago(arg: &str, now: i64) -> Value {
    let arg = arg
        .strip_prefix("ago(")
        .and_then(|a| a.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not ago(): {arg}"));
    let (n, unit) = arg.split_at(arg.len() - 1);
    let n: i64 = n.parse().unwrap();
    let ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        u => panic!("unit {u}"),
    };
    json!(rfc3339(now - n * ms))
}

/// Runs a rule's query: exactly the operators the rules use (`where` with `==`, `<`, `>` against a
/// string or `ago()`, `summarize X = max(c) by d`, `project`); anything else fails the test.
pub fn kql(
    query: &str,
    tables: &BTreeMap<&str, Vec<BTreeMap<String, Value>>>,
    now: i64,
) -> Vec<BTreeMap<String, Value>> {
    let mut ops = query.split("\n| ");
    let table = ops.next().unwrap().trim();
    let mut rows = tables
        .get(table)
        .cloned()
        .unwrap_or_else(|| panic!("the agent sends nothing that lands in {table}"));
    for op in ops {
        let words: Vec<&str> = op.split_whitespace().collect();
        match words.as_slice() {
            ["where", col, cmp, value] => {
                let rhs = if value.starts_with("ago(") {
                    ago(value, now)
                } else {
                    serde_json::from_str(value).unwrap()
                };
                rows.retain(|r| {
                    let lhs = r
                        .get(*col)
                        .unwrap_or_else(|| panic!("no column {col} in {table}"));
                    let order = lhs.as_str().unwrap().cmp(rhs.as_str().unwrap());
                    match *cmp {
                        "==" => lhs == &rhs,
                        "<" => order.is_lt(),
                        ">" => order.is_gt(),
                        c => panic!("operator {c}"),
                    }
                });
            }
            ["summarize", out, "=", agg, "by", dim] => {
                let col = agg
                    .strip_prefix("max(")
                    .and_then(|a| a.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("{agg}"));
                let mut groups: BTreeMap<String, Value> = BTreeMap::new();
                for r in &rows {
                    let key = r[*dim].as_str().unwrap().to_owned();
                    let v = r[col].clone();
                    let e = groups.entry(key).or_insert(v.clone());
                    if v.as_str() > e.as_str() {
                        *e = v;
                    }
                }
                rows = groups
                    .into_iter()
                    .map(|(k, v)| {
                        BTreeMap::from([(dim.to_string(), json!(k)), (out.to_string(), v)])
                    })
                    .collect();
            }
            ["project", ..] => {
                let cols: Vec<&str> = op["project ".len()..].split(", ").collect();
                for r in &mut rows {
                    assert!(
                        cols.iter().all(|c| r.contains_key(*c)),
                        "project {cols:?} on {r:?}"
                    );
                    r.retain(|k, _| cols.contains(&k.as_str()));
                }
            }
            _ => panic!("an operator the rules do not use: {op}"),
        }
    }
    rows
}

/// The VMs (dimension values) a rule fires for, as Azure evaluates a log alert's condition.
pub fn fires(condition: &Value, rows: &[BTreeMap<String, Value>]) -> Vec<String> {
    let dim = condition["dimensions"][0]["name"].as_str().unwrap();
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let measure = match condition["metricMeasureColumn"].as_str() {
            Some(c) => r[c].as_f64().unwrap(),
            None => 1.0,
        };
        groups
            .entry(r[dim].as_str().unwrap().to_owned())
            .or_default()
            .push(measure);
    }
    let threshold = condition["threshold"].as_f64().unwrap();
    groups
        .into_iter()
        .filter(|(_, v)| {
            let x = match condition["timeAggregation"].as_str().unwrap() {
                "Count" => v.len() as f64,
                "Maximum" => v.iter().copied().fold(f64::MIN, f64::max),
                "Minimum" => v.iter().copied().fold(f64::MAX, f64::min),
                "Total" => v.iter().sum(),
                a => panic!("aggregation {a}"),
            };
            match condition["operator"].as_str().unwrap() {
                "GreaterThan" => x > threshold,
                "LessThan" => x < threshold,
                o => panic!("operator {o}"),
            }
        })
        .map(|(k, _)| k)
        .collect()
}

/// The envelopes the agent's real Application Insights sender posts to a fresh ingestion endpoint
/// for one report with the worker down. `imds_endpoint` is where the agent asks its VM's identity
/// (`None`: the default, which asks nothing off Azure).
pub async fn agent_envelopes(host: &str, imds_endpoint: Option<&str>) -> Vec<Value> {
    use cryptobot_agent::{
        alerts::{Alerter, connection_string::ConnectionString, queue::Backoff},
        config::{AlertsConfig, AppInsightsConfig, ImdsConfig},
        daemon::testing::sample_snapshot,
        health::Status,
    };
    let ingestion = Ingestion::start().await;
    let config = AlertsConfig {
        appinsights: Some(AppInsightsConfig {
            connection: ConnectionString::parse(&ingestion.connection_string()).unwrap(),
            interval: Duration::from_secs(60),
            batch_size: 100,
            queue_size: 1000,
            max_age: Duration::from_secs(48 * 3600),
            timeout: Duration::from_secs(5),
            retry: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
            },
        }),
        imds: ImdsConfig {
            endpoint: imds_endpoint.map(str::to_owned),
            ..ImdsConfig::default()
        },
        ..AlertsConfig::default()
    };
    let state = tempfile::tempdir().unwrap();
    let alerter = Alerter::start(&config, state.path(), host);
    let report = sample_snapshot(Status::Critical).report;
    let now = serde_json::from_value(json!(rfc3339(now_ms()))).unwrap();
    alerter.observe(&report, false, now);
    // The sender posts on its own task: await both kinds.
    let both = |seen: &[Value]| {
        let has = |t: &str| seen.iter().any(|e| e["data"]["baseType"] == t);
        has("MetricData") && has("AvailabilityData")
    };
    ingestion.wait_for(Duration::from_secs(10), both).await;
    alerter.shutdown().await;
    ingestion.envelopes()
}
