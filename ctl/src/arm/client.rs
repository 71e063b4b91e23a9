//! The Resource Manager HTTP client: bearer tokens, retries and throttling.
//!
//! * 429: waits `Retry-After` (seconds or an HTTP date), then retries;
//! * 5xx and connection failures: retries with jittered exponential backoff;
//! * every answer's `x-ms-ratelimit-remaining-*` headers feed the [`Limiter`];
//! * URLs that ARM hands out (`nextLink`, `Location`, `Azure-AsyncOperation`) are only followed
//!   when they point at the configured endpoint, so the token never leaves it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use serde::de::DeserializeOwned;

use super::errors::ArmError;
use crate::{auth::TokenSource, limiter::Limiter};

/// Compute api-version used for every Microsoft.Compute call.
pub const COMPUTE_API_VERSION: &str = "2024-11-01";
/// Network api-version for NICs and public IPs.
pub const NETWORK_API_VERSION: &str = "2024-05-01";
/// The token scope of Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts for 5xx and connection failures.
    pub max_server_errors: u32,
    /// Attempts for 429.
    pub max_throttled: u32,
    /// First backoff delay (doubled each time, full jitter between half and all of it).
    pub base_delay: Duration,
    /// Largest backoff delay, and largest honoured `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_server_errors: 6,
            max_throttled: 12,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The jittered backoff before retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        exp.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// The wait before retrying after the `throttled`-th 429 (`None`: give up): the service's
    /// `Retry-After` when it sent one, else the backoff, at most `max_delay`.
    pub fn after_throttle(
        &self,
        throttled: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        (throttled < self.max_throttled).then(|| {
            retry_after
                .unwrap_or_else(|| self.backoff(throttled))
                .min(self.max_delay)
        })
    }

    /// The wait before retrying after the `failed`-th server error or failed connection (`None`:
    /// give up): `Retry-After` (at most `max_delay`) when the service sent one, else the backoff.
    pub fn after_failure(&self, failed: u32, retry_after: Option<Duration>) -> Option<Duration> {
        (failed < self.max_server_errors).then(|| {
            retry_after
                .map(|d| d.min(self.max_delay))
                .unwrap_or_else(|| self.backoff(failed))
        })
    }
}

/// An answer of ARM.
#[derive(Debug)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
    /// The URL asked (for messages).
    pub url: Url,
}

impl ArmResponse {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ArmError> {
        serde_json::from_slice(&self.body).map_err(|e| ArmError::Protocol {
            url: without_query(&self.url),
            message: format!("{e}"),
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After`, if present and sensible.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.to_utc() - now).to_std().unwrap_or(Duration::ZERO))
}

/// `url` without its query (which may carry tokens).
pub fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// The Resource Manager client.
#[derive(Debug, Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: Url,
    tokens: Arc<dyn TokenSource>,
    limiter: Limiter,
    retry: RetryPolicy,
    /// Poll interval for long-running operations without `Retry-After`.
    pub poll_interval: Duration,
}

impl ArmClient {
    /// A client for `endpoint` (must be https).
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        tokens: Arc<dyn TokenSource>,
        limiter: Limiter,
    ) -> anyhow::Result<ArmClient> {
        let endpoint = Url::parse(endpoint)
            .map_err(|e| anyhow::anyhow!("--arm-endpoint {endpoint:?} is not a URL: {e}"))?;
        anyhow::ensure!(
            endpoint.scheme() == "https",
            "--arm-endpoint must be an https URL, not {endpoint}"
        );
        anyhow::ensure!(
            endpoint.query().is_none() && endpoint.host_str().is_some(),
            "--arm-endpoint must be a base URL like https://management.azure.com"
        );
        Ok(ArmClient {
            http,
            endpoint,
            tokens,
            limiter,
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(5),
        })
    }

    /// Replaces the retry settings.
    pub fn with_retry(mut self, retry: RetryPolicy) -> ArmClient {
        self.retry = retry;
        self
    }

    /// The retry settings.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// `endpoint/segments...?api-version=v`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], api_version: &str) -> Url {
        let mut u = self.endpoint.clone();
        {
            let mut p = u.path_segments_mut().expect("https URL has a path");
            p.pop_if_empty();
            for s in segments {
                p.push(s);
            }
        }
        u.query_pairs_mut().append_pair("api-version", api_version);
        u
    }

    /// A resource id (`/subscriptions/...`) as a URL.
    pub fn resource_url(&self, id: &str, api_version: &str) -> Url {
        let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
        self.url(&segments, api_version)
    }

    /// Parses a URL handed out by ARM and checks that it points at the endpoint.
    pub fn follow(&self, link: &str) -> Result<Url, ArmError> {
        let url = Url::parse(link).map_err(|e| ArmError::Protocol {
            url: self.endpoint.to_string(),
            message: format!("bad link {link:?}: {e}"),
        })?;
        if url.origin() != self.endpoint.origin() {
            return Err(ArmError::Protocol {
                url: without_query(&url),
                message: format!(
                    "refusing to follow a link outside {} (the token must not leave it)",
                    self.endpoint
                ),
            });
        }
        Ok(url)
    }

    /// Sends a request, retrying 429 and 5xx, until `deadline`. Returns any other answer.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<ArmResponse, ArmError> {
        let mut throttled = 0u32;
        let mut failed = 0u32;
        loop {
            let token = self.tokens.token(ARM_SCOPE).await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token)
                .header("accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ArmError::Timeout(Duration::ZERO));
            }
            let outcome = match tokio::time::timeout(remaining, req.send()).await {
                Err(_) => return Err(ArmError::Timeout(remaining)),
                Ok(r) => r,
            };
            let (wait, status, message) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    self.observe_budget(&headers);
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            failed += 1;
                            let Some(wait) = self.retry.after_failure(failed, None) else {
                                return Err(ArmError::Transport {
                                    url: without_query(url),
                                    message: e.to_string(),
                                });
                            };
                            self.pause(wait, deadline).await?;
                            continue;
                        }
                    };
                    let resp = ArmResponse {
                        status,
                        headers,
                        body,
                        url: url.clone(),
                    };
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        throttled += 1;
                        let Some(wait) = self.retry.after_throttle(throttled, resp.retry_after())
                        else {
                            return Err(ArmError::GaveUp {
                                status: 429,
                                attempts: throttled + failed,
                                message: ArmError::from_response(429, &resp.body).to_string(),
                            });
                        };
                        tracing::info!(url = %without_query(url), ?wait, "throttled (429)");
                        (wait, 429, String::new())
                    } else if status.is_server_error() {
                        failed += 1;
                        let message =
                            ArmError::from_response(status.as_u16(), &resp.body).to_string();
                        let Some(wait) = self.retry.after_failure(failed, resp.retry_after())
                        else {
                            return Err(ArmError::GaveUp {
                                status: status.as_u16(),
                                attempts: throttled + failed,
                                message,
                            });
                        };
                        tracing::info!(url = %without_query(url), %status, ?wait, "server error, retrying");
                        (wait, status.as_u16(), message)
                    } else {
                        return Ok(resp);
                    }
                }
                Err(e) => {
                    failed += 1;
                    let message = error_chain(&e);
                    let Some(wait) = self.retry.after_failure(failed, None) else {
                        return Err(ArmError::Transport {
                            url: without_query(url),
                            message,
                        });
                    };
                    (wait, 0, message)
                }
            };
            if Instant::now() + wait > deadline {
                return Err(ArmError::GaveUp {
                    status,
                    attempts: throttled + failed,
                    message: if message.is_empty() {
                        format!("the next retry ({wait:?}) would pass the deadline")
                    } else {
                        message
                    },
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn pause(&self, wait: Duration, deadline: Instant) -> Result<(), ArmError> {
        if Instant::now() + wait > deadline {
            return Err(ArmError::Timeout(wait));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn observe_budget(&self, headers: &HeaderMap) {
        for (bucket, remaining) in crate::limiter::remaining_budgets(headers) {
            if let Some(limit) = self.limiter.observe(&bucket, remaining) {
                eprintln!(
                    "warning: Azure's request budget is low ({bucket}: {remaining} left): handling at most {limit} VM{} at once",
                    if limit == 1 { "" } else { "s" }
                );
            }
        }
    }

    /// GET a JSON resource; any answer but 2xx is an error.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        deadline: Instant,
    ) -> Result<T, ArmError> {
        let resp = self.send(Method::GET, url, None, deadline).await?;
        if !resp.status.is_success() {
            return Err(ArmError::from_response(resp.status.as_u16(), &resp.body));
        }
        resp.json()
    }

    /// GET every page of a list, following `nextLink`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        first: Url,
        deadline: Instant,
    ) -> Result<Vec<T>, ArmError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(ArmError::Protocol {
                    url: without_query(&url),
                    message: "more than 10000 pages".into(),
                });
            }
            let page: ListPage<T> = self.get_json(&url, deadline).await?;
            out.extend(page.value);
            next = match page.next_link.filter(|l| !l.is_empty()) {
                Some(l) => Some(self.follow(&l)?),
                None => None,
            };
        }
        Ok(out)
    }
}

/// One page of an ARM list: the items and the link to the next page.
#[derive(Debug, serde::Deserialize)]
pub struct ListPage<T> {
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page, if any.
    #[serde(rename = "nextLink")]
    pub next_link: Option<String>,
}

/// An error with its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_retry_after("17", now), Some(Duration::from_secs(17)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // a negative value is no Retry-After at all (the default interval applies)
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let d = p.backoff(attempt);
            let full = (p.base_delay * (1u32 << (attempt - 1).min(16))).min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?} vs {full:?}");
        }
    }
}
