//! Webhook sinks: Slack (attachments, colour by status, title, fields, mrkdwn `*bold*`), Discord
//! (embeds), Microsoft Teams (an Adaptive Card in a message, which both Workflows and incoming
//! webhooks render) and generic (the full report JSON plus the notification). One POST per
//! notification with a per-request timeout; retries are the worker's. Errors name the host only.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    notification::Notification,
    queue::{Deliver, DeliveryError},
};
use crate::config::{WebhookConfig, WebhookKind};

/// The HTTP client every sink uses: rustls with the platform's trust store (`SSL_CERT_FILE` is
/// honoured), no redirects (a webhook answers itself), a connect timeout.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, DeliveryError> {
    // The one crypto provider of the build (ring); installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("cryptobot-agent/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| {
            DeliveryError::fatal(format!(
                "cannot build the HTTP client: {}",
                chain(&e.without_url())
            ))
        })
}

/// A reqwest error for people: what failed and why, without the URL.
pub fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad response"
    } else {
        "request failed"
    };
    format!("{what}: {}", chain(&e.without_url()))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Classifies an HTTP status: `None` when it is a success.
pub fn status_error(host: &str, status: reqwest::StatusCode) -> Option<DeliveryError> {
    if status.is_success() {
        return None;
    }
    let message = format!("{host}: HTTP {status}");
    let retry = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    Some(if retry {
        DeliveryError::retry(message)
    } else {
        DeliveryError::fatal(message)
    })
}

/// One webhook.
#[derive(Debug)]
pub struct WebhookSink {
    config: WebhookConfig,
    client: Result<reqwest::Client, DeliveryError>,
}

impl WebhookSink {
    /// A sink for this webhook.
    pub fn new(config: WebhookConfig) -> WebhookSink {
        let client = http_client(config.timeout);
        WebhookSink { config, client }
    }

    /// Its configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }
}

impl Deliver for WebhookSink {
    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let host = &self.config.host;
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let body = serde_json::to_vec(&payload(self.config.kind, n))
            .map_err(|e| DeliveryError::fatal(format!("cannot encode the payload: {e}")))?;
        let response = client
            .post(self.config.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                DeliveryError::retry(
                    self.config
                        .url
                        .scrub(&format!("{host}: {}", describe(e, self.config.timeout))),
                )
            })?;
        match status_error(host, response.status()) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// The request body for `kind`.
pub fn payload(kind: WebhookKind, n: &Notification) -> Value {
    match kind {
        WebhookKind::Slack => slack(n),
        WebhookKind::Discord => discord(n),
        WebhookKind::Teams => teams(n),
        WebhookKind::Generic => generic(n),
    }
}

/// Slack mrkdwn escaping of `&`, `<`, `>`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The original's attachments payload, with Slack's own bold (`*bold*`) and the fields also as
/// attachment fields.
fn slack(n: &Notification) -> Value {
    let (emoji, colour) = n.style();
    let mut text = format!(
        "{emoji} *Cryptobot Health Alert - {}*\n{}\n\n*Host:* {}\n",
        n.label,
        slack_escape(&n.headline),
        slack_escape(&n.host)
    );
    for (label, value) in n.summary.fields() {
        text.push_str(&format!("*{label}:* {}\n", slack_escape(&value)));
    }
    if !n.summary.alerts.is_empty() {
        text.push_str("\n*Alerts:*\n");
        for a in &n.summary.alerts {
            text.push_str(&format!("• {}\n", slack_escape(a)));
        }
    }
    let fields: Vec<Value> = n
        .summary
        .fields()
        .into_iter()
        .skip(1)
        .map(|(title, value)| json!({"title": title, "value": value, "short": true}))
        .collect();
    json!({
        "text": format!("{emoji} [{}] Cryptobot Health Alert on {}", n.label, n.host),
        "attachments": [{
            "color": colour,
            "title": format!("{emoji} Cryptobot Health Alert"),
            "text": text,
            "fields": fields,
            "mrkdwn_in": ["text"],
            "footer": "Cryptobot Health Monitor",
            "ts": n.created_at.timestamp(),
        }]
    })
}

fn discord(n: &Notification) -> Value {
    let (emoji, _) = n.style();
    let mut description = format!("{}\n", n.headline);
    if !n.summary.alerts.is_empty() {
        description.push_str("\n**Alerts:**\n");
        for a in &n.summary.alerts {
            description.push_str(&format!("• {a}\n"));
        }
    }
    let mut fields = vec![json!({"name": "Host", "value": n.host, "inline": true})];
    fields.extend(
        n.summary
            .fields()
            .into_iter()
            .skip(1)
            .map(|(name, value)| json!({"name": name, "value": value, "inline": true})),
    );
    json!({
        "username": "Cryptobot Health",
        "embeds": [{
            "title": format!("{emoji} [{}] Cryptobot Health Alert", n.label),
            "description": description,
            "color": n.colour_number(),
            "fields": fields,
            "footer": {"text": "Cryptobot Health Monitor"},
            "timestamp": n.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]
    })
}

fn teams(n: &Notification) -> Value {
    let (emoji, _) = n.style();
    let colour = match n.label.as_str() {
        "CRITICAL" | "RESTART FAILED" => "Attention",
        "WARNING" | "BACKOFF" | "FLAPPING" => "Warning",
        "RESOLVED" | "RESTARTED" => "Good",
        _ => "Default",
    };
    let mut facts = vec![json!({"title": "Host", "value": n.host})];
    facts.extend(
        n.summary
            .fields()
            .into_iter()
            .map(|(title, value)| json!({"title": title, "value": value})),
    );
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "color": colour, "wrap": true,
               "text": format!("{emoji} [{}] Cryptobot Health Alert", n.label)}),
        json!({"type": "TextBlock", "wrap": true, "text": n.headline}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    if !n.summary.alerts.is_empty() {
        body.push(json!({"type": "TextBlock", "weight": "Bolder", "text": "Alerts", "wrap": true}));
        let list: Vec<String> = n.summary.alerts.iter().map(|a| format!("- {a}")).collect();
        body.push(json!({"type": "TextBlock", "wrap": true, "text": list.join("\r")}));
    }
    json!({
        "type": "message",
        "summary": format!("[{}] Cryptobot Health Alert", n.label),
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
            }
        }]
    })
}

/// The full report (its keys first, in order) plus `notification`.
fn generic(n: &Notification) -> Value {
    let mut out = match n.report.to_value() {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    out.insert(
        "notification".into(),
        json!({
            "kind": n.kind.as_str(),
            "label": n.label,
            "subject": n.subject(),
            "headline": n.headline,
            "host": n.host,
            "id": n.id,
            "created_at": n.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alerts::policy::Notice, daemon::testing::sample_snapshot, health::Status};

    fn critical() -> Notification {
        let report = sample_snapshot(Status::Critical).report;
        Notification::new(
            "1".into(),
            &Notice::Problem {
                status: Status::Critical,
                previous: Some(Status::Healthy),
                new_kinds: vec![],
            },
            &report,
            chrono::Utc::now(),
        )
    }

    #[test]
    fn slack_uses_slack_bold_and_the_original_shape() {
        let p = payload(WebhookKind::Slack, &critical());
        let a = &p["attachments"][0];
        assert_eq!(a["color"], "#FF0000");
        assert_eq!(a["title"], "🔴 Cryptobot Health Alert");
        assert_eq!(a["footer"], "Cryptobot Health Monitor");
        assert!(a["ts"].is_i64());
        let text = a["text"].as_str().unwrap();
        assert!(
            text.starts_with("🔴 *Cryptobot Health Alert - CRITICAL*"),
            "{text}"
        );
        assert!(text.contains("*Service Active:* ❌ No"), "{text}");
        assert!(text.contains("*Alerts:*\n• Service is not"), "{text}");
        assert!(!text.contains("**"), "{text}");
        assert!(a["fields"].as_array().unwrap().len() >= 6);
    }

    #[test]
    fn discord_teams_generic_shapes() {
        let n = critical();
        let d = payload(WebhookKind::Discord, &n);
        assert_eq!(d["embeds"][0]["color"], 0xFF0000);
        assert!(
            d["embeds"][0]["title"]
                .as_str()
                .unwrap()
                .contains("[CRITICAL]")
        );
        let t = payload(WebhookKind::Teams, &n);
        assert_eq!(t["type"], "message");
        let card = &t["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        let g = payload(WebhookKind::Generic, &n);
        let keys: Vec<&String> = g.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "timestamp");
        assert_eq!(keys[1], "status");
        assert_eq!(g["status"], "CRITICAL");
        assert_eq!(g["notification"]["kind"], "problem");
        assert_eq!(g["notification"]["label"], "CRITICAL");
    }
}
