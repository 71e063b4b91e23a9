//! `GET /metrics`: the JSON object of `cryptobot-agent check --json` (plus the daemon's state) by
//! default, or the Prometheus text formats when the `Accept` header names them, as Prometheus'
//! scrapes do. Only explicitly named formats are chosen; `*/*` and anything unknown get JSON.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    prometheus::{self, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, TextFormat},
};

/// What `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The report JSON.
    Json,
    /// One of the Prometheus text formats.
    Text(TextFormat),
}

/// The handler: reads the latest snapshot, never probes.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = state.handle.snapshot();
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let (content_type, body) = match negotiate(&accept) {
        Format::Json => ("application/json", snapshot.to_json() + "\n"),
        Format::Text(TextFormat::Prometheus) => (
            PROMETHEUS_CONTENT_TYPE,
            prometheus::encode(&snapshot, TextFormat::Prometheus),
        ),
        Format::Text(TextFormat::OpenMetrics) => (
            OPENMETRICS_CONTENT_TYPE,
            prometheus::encode(&snapshot, TextFormat::OpenMetrics),
        ),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// Picks the format for an `Accept` header (several headers joined with commas).
///
/// Each format gets the quality of the most specific media range that names it; the highest
/// quality wins, a more specific range wins a tie, and JSON wins a full tie. The text formats are
/// only chosen when named: `text/plain` (without a version, or version 0.0.4) and
/// `application/openmetrics-text`.
pub fn negotiate(accept: &str) -> Format {
    // (quality, specificity) per format; specificity 2 = exact type, 1 = `type/*`, 0 = `*/*`.
    let mut json: Option<(u16, u8)> = None;
    let mut text: Option<(u16, u8)> = None;
    let mut openmetrics: Option<(u16, u8)> = None;
    let offer = |slot: &mut Option<(u16, u8)>, q: u16, specificity: u8| {
        if slot.is_none_or(|(_, s)| specificity > s) {
            *slot = Some((q, specificity));
        }
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1000;
        let mut version = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = quality(value),
                "version" => version = Some(value.to_owned()),
                _ => {}
            }
        }
        match media.as_str() {
            "application/json" => offer(&mut json, q, 2),
            "application/*" => offer(&mut json, q, 1),
            "*/*" => offer(&mut json, q, 0),
            "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => {
                offer(&mut text, q, 2);
            }
            "application/openmetrics-text" => offer(&mut openmetrics, q, 2),
            _ => {}
        }
    }
    let rank = |slot: Option<(u16, u8)>| slot.filter(|(q, _)| *q > 0);
    let mut best = (rank(json), Format::Json);
    for candidate in [
        (rank(openmetrics), Format::Text(TextFormat::OpenMetrics)),
        (rank(text), Format::Text(TextFormat::Prometheus)),
    ] {
        if candidate.0 > best.0 {
            best = candidate;
        }
    }
    best.1
}

/// `q` in thousandths (RFC 9110 allows at most three decimals); unreadable values count as 1.
fn quality(value: &str) -> u16 {
    match value.parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_SCRAPE: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn prometheus_scrapes_get_openmetrics() {
        assert_eq!(
            negotiate(PROMETHEUS_SCRAPE),
            Format::Text(TextFormat::OpenMetrics)
        );
    }

    #[test]
    fn text_plain_gets_the_prometheus_format() {
        for accept in [
            "text/plain;version=0.0.4",
            "text/plain; version=0.0.4; charset=utf-8",
            "text/plain",
            "TEXT/PLAIN",
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "text/plain, */*",
        ] {
            assert_eq!(
                negotiate(accept),
                Format::Text(TextFormat::Prometheus),
                "{accept}"
            );
        }
    }

    #[test]
    fn everything_else_gets_json() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "application/json, text/plain",
            "application/json;q=0.9, text/plain;q=0.5",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/plain;version=9.9",
            "text/plain;q=0",
            "image/png",
            ";;;,,,=;q=",
            "text/plain;q=0.5, application/*",
        ] {
            assert_eq!(negotiate(accept), Format::Json, "{accept:?}");
        }
    }

    #[test]
    fn higher_quality_wins() {
        assert_eq!(
            negotiate("application/openmetrics-text;q=0.2, text/plain;q=0.8"),
            Format::Text(TextFormat::Prometheus)
        );
        assert_eq!(
            negotiate("application/json;q=0.1, application/openmetrics-text"),
            Format::Text(TextFormat::OpenMetrics)
        );
    }
}
