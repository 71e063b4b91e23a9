//! The email sink: one plain-text message per notification over SMTP (`lettre`, rustls). STARTTLS
//! is required on 587, TLS from the first byte on 465, no TLS only when configured (`tls = "none"`,
//! local relays); login when a user and password are set; connect and I/O timeouts, plus an overall
//! deadline. Subject `[CRITICAL] Cryptobot Health Alert` (`[RESOLVED] …`, `[FLAPPING] …`).

use std::fmt::Write as _;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
        extension::ClientId,
    },
};

use super::{
    notification::Notification,
    queue::{Deliver, DeliveryError},
};
use crate::config::{EmailConfig, SmtpTls};

/// The email sink.
#[derive(Debug)]
pub struct EmailSink {
    config: EmailConfig,
    hello: String,
}

impl EmailSink {
    /// A sink for this configuration; `hello` is the name given in EHLO (the host name).
    pub fn new(config: EmailConfig, hello: &str) -> EmailSink {
        EmailSink {
            config,
            hello: hello.to_owned(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    fn scrub(&self, text: &str) -> String {
        match &self.config.password {
            Some(p) => p.scrub(text),
            None => text.to_owned(),
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
        let c = &self.config;
        let tls_params = || {
            TlsParameters::new(c.host.clone())
                .map_err(|e| DeliveryError::fatal(format!("{}: TLS setup: {e}", c.host)))
        };
        let tls = match c.tls {
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port)
            .tls(tls)
            .timeout(Some(c.timeout))
            .hello_name(ClientId::Domain(self.hello.clone()));
        if let (Some(user), Some(password)) = (&c.user, &c.password) {
            b = b.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(b.build())
    }

    fn message(&self, n: &Notification) -> Result<Message, DeliveryError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            DeliveryError::fatal(format!("email: {what}: {e}"))
        };
        let from: Mailbox = self.config.from.parse().map_err(|e| bad("from", &e))?;
        let mut b = Message::builder().from(from).subject(n.subject());
        for to in &self.config.to {
            b = b.to(to.parse().map_err(|e| bad("to", &e))?);
        }
        b.header(ContentType::TEXT_PLAIN)
            .body(body(n))
            .map_err(|e| bad("message", &e))
    }
}

impl Deliver for EmailSink {
    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let host = &self.config.host;
        let message = self.message(n)?;
        let transport = self.transport()?;
        // The transport's timeout bounds each connect, read and write; this bounds the whole talk.
        let deadline = self.config.timeout * 3;
        let sent = tokio::time::timeout(deadline, transport.send(message)).await;
        match sent {
            Err(_) => Err(DeliveryError::retry(format!(
                "{host}: SMTP exchange not done within {}",
                humantime::format_duration(deadline)
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let text = self.scrub(&format!("{host}: SMTP: {e}"));
                if e.is_permanent() {
                    Err(DeliveryError::fatal(text))
                } else {
                    Err(DeliveryError::retry(text))
                }
            }
        }
    }
}

/// The plain-text body: the headline, then the original's fields and alerts.
pub fn body(n: &Notification) -> String {
    let s = &n.summary;
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "Yes",
        Some(false) => "No",
        None => "unknown",
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
    let mut out = String::new();
    let _ = writeln!(out, "Cryptobot Health Alert - {}", n.label);
    let _ = writeln!(out, "{}\n", n.headline);
    let _ = writeln!(out, "Host: {}", n.host);
    let _ = writeln!(out, "Status: {}", s.status);
    let _ = writeln!(out, "Timestamp: {}", s.timestamp);
    let _ = writeln!(out, "Service Active: {}", yes_no(s.service_active));
    let _ = writeln!(out, "Service Running: {}", yes_no(s.service_running));
    let _ = writeln!(
        out,
        "Crash Count: {}",
        opt(s.crash_count.map(|c| c.to_string()))
    );
    let _ = writeln!(
        out,
        "Disk Usage: {}",
        opt(s.disk_usage_percent.map(|v| format!("{v}%")))
    );
    let _ = writeln!(
        out,
        "Memory Usage: {}",
        opt(s.memory_usage_percent.map(|v| format!("{v}%")))
    );
    let _ = writeln!(
        out,
        "Heartbeat Age: {}",
        match s.heartbeat_age_seconds {
            Some(-1) => "missing (no heartbeat file)".to_owned(),
            Some(v) => format!("{v}s"),
            None => "unknown".to_owned(),
        }
    );
    if s.alerts.is_empty() {
        let _ = writeln!(out, "\nNo alerts");
    } else {
        let _ = writeln!(out, "\nAlerts:");
        for a in &s.alerts {
            let _ = writeln!(out, "  - {a}");
        }
    }
    let _ = writeln!(out, "\n-- \ncryptobot-agent {}", env!("CARGO_PKG_VERSION"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alerts::policy::Notice, daemon::testing::sample_snapshot, health::Status};

    #[test]
    fn body_has_the_original_fields() {
        let report = sample_snapshot(Status::Critical).report;
        let n = Notification::new(
            "1".into(),
            &Notice::Problem {
                status: Status::Critical,
                previous: None,
                new_kinds: vec![],
            },
            &report,
            chrono::Utc::now(),
        );
        let b = body(&n);
        for needle in [
            "Status: CRITICAL",
            "Timestamp: ",
            "Service Active: No",
            "Service Running: No",
            "Crash Count: 0",
            "Disk Usage: 41%",
            "Memory Usage: 22%",
            "Heartbeat Age: 3s",
            "Alerts:\n  - Service is not",
        ] {
            assert!(b.contains(needle), "{needle:?} in {b}");
        }
    }
}
