//! The alert sinks' settings: `[alerts]`, webhooks, e-mail and Application Insights, each falling
//! back on the original monitor's environment variables where the file leaves a value unset.

use std::time::Duration;

use super::{validate::*, *};

/// Defaults of a sink section that is present.
pub(super) const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const AI_BATCH: usize = 100;
pub(super) const AI_QUEUE: usize = 2000;
pub(super) const AI_MAX_AGE: Duration = Duration::from_secs(48 * 3600);
pub(super) const AI_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const AI_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(300),
};

pub(super) fn alerts_from_raw(
    raw: RawAlerts,
    env: &dyn Fn(&str) -> Option<String>,
    interval: Duration,
) -> Result<AlertsConfig, Invalid> {
    let d = AlertsConfig::default();
    let invalid = |key: &str, message: &str| Err(Invalid::new(key, message));
    let policy = PolicyConfig {
        repeat_interval: positive(
            "alerts.repeat_interval",
            raw.repeat_interval,
            d.policy.repeat_interval,
        )?,
        flapping_changes: raw.flapping_changes.unwrap_or(d.policy.flapping_changes),
        flapping_window: positive(
            "alerts.flapping_window",
            raw.flapping_window,
            d.policy.flapping_window,
        )?,
        flapping_stable_after: positive(
            "alerts.flapping_stable_after",
            raw.flapping_stable_after,
            d.policy.flapping_stable_after,
        )?,
    };
    if policy.flapping_changes < 2 {
        return invalid("alerts.flapping_changes", "must be at least 2");
    }
    let queue_size = raw.queue_size.unwrap_or(d.queue_size);
    if queue_size == 0 {
        return invalid("alerts.queue_size", "must be at least 1");
    }
    let retry = Backoff {
        initial: positive("alerts.retry_initial", raw.retry_initial, d.retry.initial)?,
        max: positive("alerts.retry_max", raw.retry_max, d.retry.max)?,
    };
    if retry.max < retry.initial {
        return invalid("alerts.retry_max", "is shorter than alerts.retry_initial");
    }

    let mut webhooks = Vec::new();
    match raw.webhook {
        Some(list) => {
            for (i, w) in list.into_iter().enumerate() {
                let key = |k: &str| format!("alerts.webhook[{i}].{k}");
                let kind_text = w.kind.unwrap_or_else(|| "generic".into());
                let Some(kind) = WebhookKind::parse(&kind_text) else {
                    return Err(Invalid::new(
                        key("kind"),
                        format!("{kind_text:?} is not slack, discord, teams or generic"),
                    ));
                };
                let Some(url) = w.url.filter(|u| !u.trim().is_empty()) else {
                    return Err(Invalid::new(key("url"), "is required"));
                };
                let host = webhook_host(&url).map_err(|m| Invalid::new(key("url"), m))?;
                let timeout = positive(&key("timeout"), w.timeout, WEBHOOK_TIMEOUT)?;
                let name = w.name.unwrap_or_else(|| kind.as_str().to_owned());
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(Invalid::new(key("name"), "must be letters, digits, - _ ."));
                }
                webhooks.push(WebhookConfig {
                    name,
                    kind,
                    url: Secret::new(url.trim()),
                    host,
                    timeout,
                });
            }
        }
        None => {
            let url = env(env::WEBHOOK_OLD).or_else(|| env(env::WEBHOOK));
            if let Some(url) = url {
                let host = webhook_host(&url).map_err(|m| {
                    Invalid::new(
                        format!("{} (environment)", env::WEBHOOK),
                        format!(
                            "{m} (the original variable names: {} or {})",
                            env::WEBHOOK,
                            env::WEBHOOK_OLD
                        ),
                    )
                })?;
                let kind = guess_webhook_kind(&host);
                webhooks.push(WebhookConfig {
                    name: kind.as_str().to_owned(),
                    kind,
                    url: Secret::new(url.trim()),
                    host,
                    timeout: WEBHOOK_TIMEOUT,
                });
            }
        }
    }
    // Unique names: the second `slack` becomes `slack-2`, and so on.
    for i in 1..webhooks.len() {
        let base = webhooks[i].name.clone();
        let mut n = 2;
        while webhooks[..i].iter().any(|w| w.name == webhooks[i].name) {
            webhooks[i].name = format!("{base}-{n}");
            n += 1;
        }
    }

    let email = email_from_raw(raw.email, env)?;

    let ai = raw.appinsights.unwrap_or_default();
    let imds = imds_from_raw(ai.imds, ai.imds_endpoint.as_deref(), &d.imds)?;
    let conn_text = ai
        .connection_string
        .filter(|c| !c.trim().is_empty())
        .or_else(|| env(env::CONNECTION_STRING));
    let appinsights = match conn_text {
        None => None,
        Some(text) => {
            let connection = ConnectionString::parse(&text)
                .map_err(|e| Invalid::new("alerts.appinsights.connection_string", e.to_string()))?;
            let cfg = AppInsightsConfig {
                connection,
                interval: positive("alerts.appinsights.interval", ai.interval, interval)?,
                batch_size: ai.batch_size.unwrap_or(AI_BATCH),
                queue_size: ai.queue_size.unwrap_or(AI_QUEUE),
                max_age: positive("alerts.appinsights.max_age", ai.max_age, AI_MAX_AGE)?,
                timeout: positive("alerts.appinsights.timeout", ai.timeout, AI_TIMEOUT)?,
                retry: Backoff {
                    initial: positive(
                        "alerts.appinsights.retry_initial",
                        ai.retry_initial,
                        AI_RETRY.initial,
                    )?,
                    max: positive("alerts.appinsights.retry_max", ai.retry_max, AI_RETRY.max)?,
                },
            };
            if cfg.batch_size == 0 || cfg.batch_size > 1000 {
                return invalid("alerts.appinsights.batch_size", "must be 1 to 1000");
            }
            if cfg.queue_size < cfg.batch_size {
                return invalid(
                    "alerts.appinsights.queue_size",
                    "is smaller than alerts.appinsights.batch_size",
                );
            }
            if cfg.max_age > AI_MAX_AGE {
                return invalid(
                    "alerts.appinsights.max_age",
                    "the service refuses items older than 48h",
                );
            }
            Some(cfg)
        }
    };

    Ok(AlertsConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        policy,
        queue_size,
        max_age: positive("alerts.max_age", raw.max_age, d.max_age)?,
        retry,
        check_wait: positive("alerts.check_wait", raw.check_wait, d.check_wait)?,
        webhooks,
        email,
        appinsights,
        imds,
    })
}

/// `alerts.appinsights.imds` (default on) and `imds_endpoint` (an `http(s)://host[:port]`
/// base URL, for tests; the standard address otherwise).
fn imds_from_raw(
    enabled: Option<bool>,
    endpoint: Option<&str>,
    d: &ImdsConfig,
) -> Result<ImdsConfig, Invalid> {
    let endpoint = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => {
            let ok = reqwest::Url::parse(e).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none()
            });
            if !ok {
                return Err(Invalid::new(
                    "alerts.appinsights.imds_endpoint",
                    "must be a base URL like http://169.254.169.254",
                ));
            }
            Some(e.trim_end_matches('/').to_owned())
        }
    };
    Ok(ImdsConfig {
        enabled: enabled.unwrap_or(d.enabled),
        endpoint,
        timeout: d.timeout,
    })
}

pub(super) fn email_from_raw(
    raw: Option<RawEmail>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<EmailConfig>, Invalid> {
    let from_file = raw.is_some();
    let raw = raw.unwrap_or_default();
    let to: Vec<String> = match raw.to {
        Some(to) => to,
        None => env(env::EMAIL)
            .map(|t| {
                t.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    };
    if to.is_empty() {
        if from_file {
            return Err(Invalid::new(
                "alerts.email.to",
                "needs at least one address",
            ));
        }
        return Ok(None);
    }
    for a in &to {
        if !plausible_address(a) {
            return Err(Invalid::new(
                "alerts.email.to",
                format!("{a:?} is not an address"),
            ));
        }
    }
    let host = match raw.host.or_else(|| env(env::SMTP_HOST)) {
        Some(h) => h,
        // The original's default, kept for configurations made of environment variables only.
        None if !from_file => "smtp.gmail.com".to_owned(),
        None => return Err(Invalid::new("alerts.email.host", "is required")),
    };
    let port = match raw.port {
        Some(p) => p,
        None => match env(env::SMTP_PORT) {
            Some(p) => p.trim().parse().map_err(|_| {
                Invalid::new(
                    env::SMTP_PORT.to_owned(),
                    format!("{p:?} is not a port number"),
                )
            })?,
            None => 587,
        },
    };
    let tls = match raw.tls.as_deref() {
        None if port == 465 => SmtpTls::Implicit,
        None | Some("starttls") => SmtpTls::Starttls,
        Some("implicit") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(other) => {
            return Err(Invalid::new(
                "alerts.email.tls",
                format!("{other:?} is not starttls, implicit or none"),
            ));
        }
    };
    let user = raw
        .user
        .or_else(|| env(env::SMTP_USER))
        .filter(|u| !u.is_empty());
    let password = raw
        .password
        .or_else(|| env(env::SMTP_PASSWORD))
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    if user.is_some() != password.is_some() {
        return Err(Invalid::new(
            "alerts.email.user",
            "user and password go together",
        ));
    }
    let from = match raw.from {
        Some(f) => f,
        None => match &user {
            Some(u) if plausible_address(u) => u.clone(),
            _ => format!(
                "cryptobot-agent@{}",
                env(env::HOST_NAME).unwrap_or_else(|| "localhost".into())
            ),
        },
    };
    if !plausible_address(&from) {
        return Err(Invalid::new(
            "alerts.email.from",
            format!("{from:?} is not an address"),
        ));
    }
    Ok(Some(EmailConfig {
        to,
        from,
        host,
        port,
        tls,
        user,
        password,
        timeout: positive("alerts.email.timeout", raw.timeout, SMTP_TIMEOUT)?,
    }))
}

pub(super) fn plausible_address(a: &str) -> bool {
    let a = a.trim();
    let addr = match (a.find('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => &a[l + 1..r],
        _ => a,
    };
    matches!(addr.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !addr.contains(char::is_whitespace))
}

/// The host of an http(s) URL; the message never contains the URL.
pub(super) fn webhook_host(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    parsed
        .host_str()
        .map(str::to_owned)
        .ok_or_else(|| "has no host".into())
}

/// The payload format for a URL given by the environment: the original always sent Slack's.
pub(super) fn guess_webhook_kind(host: &str) -> WebhookKind {
    let h = host.to_ascii_lowercase();
    if h == "discord.com" || h == "discordapp.com" || h.ends_with(".discord.com") {
        WebhookKind::Discord
    } else if h.ends_with(".webhook.office.com") || h.ends_with(".logic.azure.com") {
        WebhookKind::Teams
    } else {
        WebhookKind::Slack
    }
}
