//! The Azure Monitor query APIs (data plane, not Resource Manager): Application Insights
//! (`POST {endpoint}/v1/apps/{appId}/query`, token audience `https://api.applicationinsights.io`)
//! and Log Analytics (`POST {endpoint}/v1/workspaces/{workspaceId}/query`, audience
//! `https://api.loganalytics.io`), both answering `{"tables":[{"name","columns":[{"name","type"}],
//! "rows":[[…]]}]}`. Query API keys are retired: the token comes from the same credential chain as
//! Resource Manager's, for the API's own audience.
//!
//! Retries as for Resource Manager: 429 after its `Retry-After`, 5xx and connection failures with
//! jittered backoff, within the deadline. A `200` with the tables and an `error` (`PartialError`)
//! is an answer with a warning; a `204` (no data) is an empty table; an empty `200` (what the API
//! answers a request without a JSON content type) is an error, not "no VM has telemetry".

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    RetryPolicy,
    client::{error_chain, parse_retry_after, without_query},
};
use crate::auth::{AuthError, TokenSource};

/// The Application Insights query API.
pub const APP_INSIGHTS_ENDPOINT: &str = "https://api.applicationinsights.io";
/// The Log Analytics query API.
pub const LOG_ANALYTICS_ENDPOINT: &str = "https://api.loganalytics.io";

/// Which API, and which store in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryApi {
    /// An Application Insights resource, by its Application ID.
    AppInsights(String),
    /// A Log Analytics workspace, by its Workspace ID.
    LogAnalytics(String),
}

impl QueryApi {
    /// The token scope of the API.
    pub fn scope(&self) -> &'static str {
        match self {
            QueryApi::AppInsights(_) => "https://api.applicationinsights.io/.default",
            QueryApi::LogAnalytics(_) => "https://api.loganalytics.io/.default",
        }
    }

    /// The public endpoint.
    pub fn default_endpoint(&self) -> &'static str {
        match self {
            QueryApi::AppInsights(_) => APP_INSIGHTS_ENDPOINT,
            QueryApi::LogAnalytics(_) => LOG_ANALYTICS_ENDPOINT,
        }
    }

    fn segments(&self) -> [&str; 4] {
        match self {
            QueryApi::AppInsights(id) => ["v1", "apps", id, "query"],
            QueryApi::LogAnalytics(id) => ["v1", "workspaces", id, "query"],
        }
    }
}

/// A failed query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No token for the API's audience.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API answered with an error.
    #[error("query API error {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`BadArgumentError`, `PathNotFoundError`, …).
        code: String,
        /// The message, with the inner error's when there is one.
        message: String,
    },
    /// Still throttled or failing when the retries or the time ran out.
    #[error("the query API kept answering {status} after {attempts} attempts: {message}")]
    GaveUp {
        /// The last HTTP status (0: no answer).
        status: u16,
        /// Requests sent.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// Not reached.
    #[error("cannot reach the query API at {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Not the documented shape.
    #[error("unexpected answer from the query API at {url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The time allowed ran out.
    #[error("the time allowed ran out waiting for the query API")]
    Timeout,
}

impl QueryError {
    fn from_response(status: u16, body: &[u8]) -> QueryError {
        #[derive(Deserialize)]
        struct Body {
            error: Info,
        }
        #[derive(Deserialize)]
        struct Info {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            innererror: Option<Box<Info>>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => {
                let mut message = b.error.message;
                if let Some(inner) = b.error.innererror {
                    message = format!("{message} ({}: {})", inner.code, inner.message);
                }
                QueryError::Api {
                    status,
                    code: b.error.code,
                    message,
                }
            }
            Err(_) => QueryError::Api {
                status,
                code: StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error")
                    .replace(' ', ""),
                message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            },
        }
    }
}

/// A column of a result table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type (`string`, `datetime`, `real`, `long`, `dynamic`, …).
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A result table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Table {
    /// `PrimaryResult` for the query's result.
    #[serde(default)]
    pub name: String,
    /// The columns, in the order of each row's cells.
    #[serde(default)]
    pub columns: Vec<Column>,
    /// The rows.
    #[serde(default)]
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The index of a column, by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A query's answer.
#[derive(Debug, Clone, Default)]
pub struct QueryAnswer {
    /// The primary result.
    pub table: Table,
    /// The error of a partial answer (`PartialError`): the rows may be incomplete.
    pub partial: Option<String>,
}

/// Parses a `200` body: the `PrimaryResult` table (else the first) and any partial error.
pub fn parse_answer(body: &[u8]) -> Result<QueryAnswer, String> {
    #[derive(Deserialize)]
    struct Results {
        tables: Vec<Table>,
        #[serde(default)]
        error: Option<Value>,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("an empty answer (was the request sent as application/json?)".into());
    }
    let r: Results =
        serde_json::from_slice(body).map_err(|e| format!("not a query result: {e}"))?;
    let partial = r.error.filter(|e| !e.is_null()).map(|e| {
        let code = e["code"].as_str().unwrap_or("error");
        let mut text = format!("{code}: {}", e["message"].as_str().unwrap_or(""));
        if let Some(d) = e["details"].as_array().and_then(|d| d.first()) {
            text.push_str(&format!(" ({})", d["message"].as_str().unwrap_or("")));
        }
        text
    });
    let mut tables = r.tables;
    let i = tables
        .iter()
        .position(|t| t.name == "PrimaryResult")
        .unwrap_or(0);
    if tables.is_empty() {
        return Err("a query result without a table".into());
    }
    Ok(QueryAnswer {
        table: tables.swap_remove(i),
        partial,
    })
}

/// A client of one query API.
#[derive(Debug, Clone)]
pub struct LogsQueryClient {
    http: reqwest::Client,
    url: Url,
    tokens: Arc<dyn TokenSource>,
    api: QueryApi,
    retry: RetryPolicy,
}

impl LogsQueryClient {
    /// A client of `api` at `endpoint` (its public endpoint when `None`).
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<&str>,
        tokens: Arc<dyn TokenSource>,
        api: QueryApi,
    ) -> anyhow::Result<LogsQueryClient> {
        let base = endpoint.unwrap_or(api.default_endpoint());
        let mut url =
            Url::parse(base).map_err(|e| anyhow::anyhow!("query endpoint {base:?}: {e}"))?;
        anyhow::ensure!(url.scheme() == "https", "the query endpoint must be https");
        {
            let mut p = url
                .path_segments_mut()
                .map_err(|()| anyhow::anyhow!("query endpoint {base:?} is not a base URL"))?;
            p.pop_if_empty();
            p.extend(api.segments());
        }
        Ok(LogsQueryClient {
            http,
            url,
            tokens,
            api,
            retry: RetryPolicy::default(),
        })
    }

    /// The URL queries go to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Runs `query` over the last `timespan` (ISO 8601, e.g. `P2D`).
    pub async fn query(
        &self,
        query: &str,
        timespan: &str,
        deadline: Instant,
    ) -> Result<QueryAnswer, QueryError> {
        let body = json!({"query": query, "timespan": timespan});
        let (mut throttled, mut failed) = (0u32, 0u32);
        loop {
            let token = self.tokens.token(self.api.scope()).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(QueryError::Timeout);
            }
            let req = self
                .http
                .post(self.url.clone())
                .bearer_auth(token)
                .header("accept", "application/json")
                .header("prefer", "wait=120")
                .json(&body)
                .send();
            let outcome = match tokio::time::timeout(remaining, req).await {
                Err(_) => return Err(QueryError::Timeout),
                Ok(r) => r,
            };
            let (wait, status, message) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            failed += 1;
                            let Some(w) = self.retry.after_failure(failed, None) else {
                                return Err(QueryError::Transport {
                                    url: without_query(&self.url),
                                    message: error_chain(&e),
                                });
                            };
                            self.sleep(w, deadline).await?;
                            continue;
                        }
                    };
                    match status {
                        StatusCode::NO_CONTENT => return Ok(QueryAnswer::default()),
                        s if s.is_success() => {
                            return parse_answer(&bytes).map_err(|message| QueryError::Protocol {
                                url: without_query(&self.url),
                                message,
                            });
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            throttled += 1;
                            let message = QueryError::from_response(429, &bytes).to_string();
                            let Some(w) = self.retry.after_throttle(throttled, retry_after) else {
                                return Err(QueryError::GaveUp {
                                    status: 429,
                                    attempts: throttled + failed,
                                    message,
                                });
                            };
                            (w, 429, message)
                        }
                        s if s.is_server_error() => {
                            failed += 1;
                            let message = QueryError::from_response(s.as_u16(), &bytes).to_string();
                            let Some(w) = self.retry.after_failure(failed, retry_after) else {
                                return Err(QueryError::GaveUp {
                                    status: s.as_u16(),
                                    attempts: throttled + failed,
                                    message,
                                });
                            };
                            (w, s.as_u16(), message)
                        }
                        s => return Err(QueryError::from_response(s.as_u16(), &bytes)),
                    }
                }
                Err(e) => {
                    failed += 1;
                    let message = error_chain(&e);
                    let Some(w) = self.retry.after_failure(failed, None) else {
                        return Err(QueryError::Transport {
                            url: without_query(&self.url),
                            message,
                        });
                    };
                    (w, 0, message)
                }
            };
            tracing::info!(url = %without_query(&self.url), status, ?wait, "query retried");
            if Instant::now() + wait > deadline {
                return Err(QueryError::GaveUp {
                    status,
                    attempts: throttled + failed,
                    message,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn sleep(&self, wait: Duration, deadline: Instant) -> Result<(), QueryError> {
        if Instant::now() + wait > deadline {
            return Err(QueryError::Timeout);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_parses() {
        // query-api/appinsights-v1/query-post.json (cells as strings)
        let body = br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"timestamp","type":"datetime"},{"name":"count_","type":"long"}],"rows":[["2018-02-02T05:00:00Z","255"]]}]}"#;
        let a = parse_answer(body).unwrap();
        assert_eq!(a.table.column("count_"), Some(1));
        assert_eq!(a.table.rows[0][1], "255");
        assert!(a.partial.is_none());
    }

    #[test]
    fn partial_errors_empty_answers_and_error_bodies() {
        let body = br#"{"tables":[{"name":"PrimaryResult","columns":[],"rows":[]}],
            "error":{"code":"PartialError","message":"There were some errors when processing your query.",
                     "details":[{"code":"EngineError","message":"Something went wrong processing your query on the server."}]}}"#;
        let a = parse_answer(body).unwrap();
        assert!(
            a.partial
                .as_deref()
                .unwrap()
                .starts_with("PartialError: There were some errors"),
            "{a:?}"
        );
        assert!(parse_answer(b"").unwrap_err().contains("empty answer"));
        assert!(parse_answer(br#"{"tables":[]}"#).is_err());
        let e = QueryError::from_response(
            400,
            br#"{"error":{"message":"The request had some invalid properties","code":"BadArgumentError","innererror":{"code":"SyntaxError","message":"Syntax Error"}}}"#,
        );
        assert_eq!(
            e.to_string(),
            "query API error 400 BadArgumentError: The request had some invalid properties (SyntaxError: Syntax Error)"
        );
    }

    #[test]
    fn urls_and_scopes() {
        #[derive(Debug)]
        struct NoTokens;
        #[async_trait::async_trait]
        impl TokenSource for NoTokens {
            async fn token(&self, _: &str) -> Result<String, AuthError> {
                Err(AuthError::NoCredential(Vec::new()))
            }
        }
        let api = QueryApi::LogAnalytics("63613592-b6f7-4c3d-a390-22ba13102111".into());
        assert_eq!(api.scope(), "https://api.loganalytics.io/.default");
        crate::tls::install_crypto_provider();
        let c = LogsQueryClient::new(
            reqwest::Client::new(),
            Some("https://127.0.0.1:9/"),
            Arc::new(NoTokens),
            api,
        )
        .unwrap();
        assert_eq!(
            c.url().as_str(),
            "https://127.0.0.1:9/v1/workspaces/63613592-b6f7-4c3d-a390-22ba13102111/query"
        );
        let ai = QueryApi::AppInsights("a".into());
        assert_eq!(ai.default_endpoint(), APP_INSIGHTS_ENDPOINT);
    }
}
