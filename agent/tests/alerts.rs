//! Alert notifications against real components: webhook receivers (HTTP servers on 127.0.0.1
//! inside the test) and a real SMTP server (aiosmtpd); also `alert test` and `check --alert` from
//! the command line, and secrets kept out of logs and status. The alerter is driven in-process with
//! sample reports; the policy is the real one and so are the sinks. Tests wait for events (a
//! message arriving, a status changing), never for a fixed time.

mod alerts_common;

use alerts_common::*;

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
