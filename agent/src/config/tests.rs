//! Tests of loading, validation and display, of `[alerts]`, and of the shipped `agent.toml`.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("agent.toml"))
}

#[test]
fn empty_file_gives_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    let d = Config::default();
    assert_eq!(d.heartbeat.paths[0], Path::new("/tmp/cryptobot_heartbeat"));
    assert_eq!(
        d.heartbeat.paths[1],
        Path::new("/home/azureuser/Repositories/cryptobot/logs/heartbeat.txt")
    );
}

#[test]
fn heartbeat_defaults_follow_app_dir() {
    let c = parse("[worker]\napp_dir = \"/srv/bot\"\n").unwrap();
    assert_eq!(
        c.heartbeat.paths[1],
        Path::new("/srv/bot/logs/heartbeat.txt")
    );
}

#[test]
fn unknown_key_is_named() {
    let e = parse("[disk]\nwarn_percent = 70\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("warn_percent"), "{e}");
    let e = parse("colour = 1\n").unwrap_err().to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let cases = [
        ("[disk]\nwarning_percent = 150\n", "disk.warning_percent"),
        ("[disk]\nwarning_percent = 95\n", "disk.warning_percent"),
        ("[disk]\nmounts = []\n", "disk.mounts"),
        ("[disk]\nmounts = [\"data\"]\n", "disk.mounts"),
        ("[worker]\nunit = \"ssh\"\n", "worker.unit"),
        ("[worker]\nunit = \"a b.service\"\n", "worker.unit"),
        (
            "[heartbeat]\nstale_after = \"0s\"\n",
            "heartbeat.stale_after",
        ),
        ("[deadlines]\njournal = \"0s\"\n", "deadlines.journal"),
        ("[journal]\npatterns = [\"(\"]\n", "journal.patterns"),
        ("[journal]\npatterns = [\"\"]\n", "journal.patterns"),
        (
            "[journal]\nmax_lookback = \"500000years\"\n",
            "journal.max_lookback",
        ),
        ("[http]\nlisten = \"8080\"\n", "http.listen"),
        ("[http]\ntoken = \"short\"\n", "http.token"),
        (
            "[http]\nmax_connections_per_ip = 0\n",
            "http.max_connections_per_ip",
        ),
        ("[http]\nheader_timeout = \"0s\"\n", "http.header_timeout"),
        ("[grpc]\ntoken = \"has a space in it ok\"\n", "grpc.token"),
        ("[restart]\nfactor = 0\n", "restart.factor"),
        ("[restart]\nmax_delay = \"1s\"\n", "restart.max_delay"),
        (
            "[disk]\nforecast_window = \"20s\"\n",
            "disk.forecast_window",
        ),
        (
            "[disk]\nforecast_window = \"5m\"\n[daemon]\ninterval = \"5m\"\n",
            "disk.forecast_window",
        ),
        (
            "[disk]\nforecast_min_history = \"2h\"\n",
            "disk.forecast_min_history",
        ),
        (
            "[disk]\nforecast_floor_percent = 85\n",
            "disk.forecast_floor_percent",
        ),
        (
            "[disk]\nfull_within_critical = \"1d\"\n",
            "disk.full_within_critical",
        ),
        (
            "[disk]\nfull_within_warning = \"0s\"\n",
            "disk.full_within_warning",
        ),
    ];
    for (text, key) in cases {
        let e = parse(text).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
            "{text}: {e}"
        );
    }
}

#[test]
fn the_forecast_floor_follows_a_lower_warning_threshold() {
    let c = parse("[disk]\nwarning_percent = 40\ncritical_percent = 60\n").unwrap();
    assert_eq!(c.disk.forecast.floor_percent, 40);
    assert_eq!(Config::default().disk.forecast.floor_percent, 50);
}

#[test]
fn type_errors_show_the_key() {
    let e = parse("[heartbeat]\nstale_after = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("stale_after") && e.contains("soon"), "{e}");
    let e = parse("[disk]\ncritical_percent = \"ninety\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("critical_percent"), "{e}");
}

#[test]
fn display_round_trips() {
    let c = parse(
        "[worker]\nunit = \"w.service\"\n[disk]\nmounts = [\"/\", \"/data\"]\n[heartbeat]\nstale_after = \"90s\"\n",
    )
    .unwrap();
    assert_eq!(parse(&c.to_string()).unwrap(), c);
    assert_eq!(
        parse(&Config::default().to_string()).unwrap(),
        Config::default()
    );
}

#[test]
fn missing_default_file_is_fine_but_missing_explicit_file_is_not() {
    let p = Path::new("/nonexistent/agent.toml");
    assert_eq!(Config::load(p, false).unwrap(), Config::default());
    assert!(matches!(
        Config::load(p, true),
        Err(ConfigError::Read { .. })
    ));
}

mod alerts_section {
    use super::*;

    const HOOK: &str = "https://hooks.slack.com/services/T000/B000/planted-webhook-secret";
    const CONN: &str = "InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/";

    fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Config::parse_with_env(text, Path::new("agent.toml"), &env)
    }

    #[test]
    fn original_environment_variables_configure_the_sinks() {
        let c = with_env(
            "",
            &[
                ("ALERT_WEBHOOK_URL", HOOK),
                ("ALERT_EMAIL", "ops@example.com, dev@example.com"),
                ("SMTP_USER", "bot@example.com"),
                ("SMTP_PASSWORD", "planted-smtp-secret"),
                ("SMTP_PORT", "465"),
                ("APPLICATIONINSIGHTS_CONNECTION_STRING", CONN),
            ],
        )
        .unwrap();
        let a = &c.alerts;
        assert_eq!(a.webhooks.len(), 1);
        assert_eq!(a.webhooks[0].kind, WebhookKind::Slack);
        assert_eq!(a.webhooks[0].host, "hooks.slack.com");
        let e = a.email.as_ref().unwrap();
        assert_eq!(e.to, ["ops@example.com", "dev@example.com"]);
        assert_eq!(e.host, "smtp.gmail.com");
        assert_eq!(e.port, 465);
        assert_eq!(e.tls, SmtpTls::Implicit);
        assert_eq!(e.from, "bot@example.com");
        let ai = a.appinsights.as_ref().unwrap();
        assert_eq!(
            ai.connection.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com"
        );
        assert_eq!(ai.interval, c.daemon.interval);
        let debug = format!("{c:?}");
        for secret in [
            "planted-webhook-secret",
            "planted-smtp-secret",
            "11111111-2222",
        ] {
            assert!(!debug.contains(secret), "{secret} in Debug output");
        }
    }

    #[test]
    fn the_older_webhook_variable_wins_as_before_and_the_file_wins_over_both() {
        let c = with_env(
            "",
            &[
                ("ALERT_WEBHOOK_URL", "https://discord.com/api/webhooks/1/x"),
                ("CRYPTOBOT_ALERT_WEBHOOK", HOOK),
            ],
        )
        .unwrap();
        assert_eq!(c.alerts.webhooks[0].host, "hooks.slack.com");
        let c = with_env(
            "",
            &[("ALERT_WEBHOOK_URL", "https://discord.com/api/webhooks/1/x")],
        )
        .unwrap();
        assert_eq!(c.alerts.webhooks[0].kind, WebhookKind::Discord);
        let c = with_env(
            "[[alerts.webhook]]\nkind = \"teams\"\nurl = \"https://x.webhook.office.com/a\"\n[[alerts.webhook]]\nkind = \"teams\"\nurl = \"https://y.webhook.office.com/b\"\n",
            &[("ALERT_WEBHOOK_URL", HOOK)],
        )
        .unwrap();
        let names: Vec<&str> = c.alerts.webhooks.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["teams", "teams-2"]);
        let c = with_env(
            "[alerts.email]\nto = [\"a@example.com\"]\nhost = \"relay.local\"\nport = 25\ntls = \"none\"\n",
            &[("SMTP_HOST", "ignored.example.com")],
        )
        .unwrap();
        let e = c.alerts.email.unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("relay.local", 25, SmtpTls::None)
        );
        assert!(e.user.is_none());
    }

    #[test]
    fn bad_alert_values_are_named_without_echoing_secrets() {
        let cases = [
            (
                "[[alerts.webhook]]\nkind = \"irc\"\nurl = \"https://a.b/c\"\n",
                "alerts.webhook[0].kind",
            ),
            (
                "[[alerts.webhook]]\nkind = \"slack\"\n",
                "alerts.webhook[0].url",
            ),
            (
                "[[alerts.webhook]]\nurl = \"ftp://planted-webhook-secret@a.b/\"\n",
                "alerts.webhook[0].url",
            ),
            (
                "[alerts.email]\nto = [\"a@example.com\"]\n",
                "alerts.email.host",
            ),
            (
                "[alerts.email]\nto = [\"a@example.com\"]\nhost = \"h\"\ntls = \"ssl\"\n",
                "alerts.email.tls",
            ),
            (
                "[alerts.email]\nto = [\"a@example.com\"]\nhost = \"h\"\npassword = \"planted-smtp-secret\"\n",
                "alerts.email.user",
            ),
            (
                "[alerts.appinsights]\nconnection_string = \"InstrumentationKey=planted-ikey-secret;Broken\"\n",
                "alerts.appinsights.connection_string",
            ),
            (
                "[alerts.appinsights]\nconnection_string = \"InstrumentationKey=k\"\nmax_age = \"3d\"\n",
                "alerts.appinsights.max_age",
            ),
            (
                "[alerts]\nflapping_changes = 1\n",
                "alerts.flapping_changes",
            ),
            ("[alerts]\nretry_max = \"1s\"\n", "alerts.retry_max"),
        ];
        for (text, key) in cases {
            let e = with_env(text, &[]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{text}: {e}"
            );
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("planted"), "{shown}");
        }
    }
}

mod shipped_file {
    use super::*;

    /// The annotated file in `deploy/` states every default; it must parse to exactly the defaults.
    #[test]
    fn deploy_agent_toml_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(Config::parse(&text, &path).unwrap(), Config::default());
    }
}
