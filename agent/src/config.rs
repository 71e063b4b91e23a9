//! Agent configuration: a TOML file parsed into [`RawConfig`] (every field optional, unknown keys
//! rejected), then validated into [`Config`] (every field set, every value checked). Defaults live in
//! one place, [`Config::default`], so no file is needed at all.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

pub mod connection_string;
pub mod secret;

use connection_string::ConnectionString;
use secret::Secret;

/// Policy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// A reminder while not healthy, at most this often.
    pub repeat_interval: Duration,
    /// More status changes than this within `flapping_window` is flapping.
    pub flapping_changes: u32,
    /// The window status changes are counted in.
    pub flapping_window: Duration,
    /// Flapping ends when the status has not changed for this long.
    pub flapping_stable_after: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            repeat_interval: Duration::from_secs(4 * 3600),
            flapping_changes: 5,
            flapping_window: Duration::from_secs(15 * 60),
            flapping_stable_after: Duration::from_secs(15 * 60),
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): `initial * 2^(attempt-1)`, at most `max`,
    /// then between 50 % and 100 % of that, at random.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        base.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cryptobot/agent.toml";

/// Why a configuration could not be loaded. Callers branch on the variant: a missing default file is
/// fine (defaults apply), every other case is a configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has keys or types the agent does not know.
    #[error("{path}: {message}")]
    Parse {
        /// The file that was parsed.
        path: PathBuf,
        /// The parser's message, which names the key and shows the line.
        message: String,
    },
    /// A value is of the right type but not acceptable.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file that was validated.
        path: PathBuf,
        /// The dotted name of the offending key, e.g. `disk.warning_percent`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A duration written the human way in the file: `"90s"`, `"5m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

/// The file as written: every key optional, unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawConfig {
    pub worker: Option<RawWorker>,
    pub disk: Option<RawDisk>,
    pub memory: Option<RawMemory>,
    pub heartbeat: Option<RawHeartbeat>,
    pub journal: Option<RawJournal>,
    pub crash_loop: Option<RawCrashLoop>,
    pub deadlines: Option<RawDeadlines>,
    pub state: Option<RawState>,
    pub daemon: Option<RawDaemon>,
    pub restart: Option<RawRestart>,
    pub http: Option<RawHttp>,
    pub grpc: Option<RawGrpc>,
    pub alerts: Option<RawAlerts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAlerts {
    pub enabled: Option<bool>,
    pub repeat_interval: Option<HumanDuration>,
    pub flapping_changes: Option<u32>,
    pub flapping_window: Option<HumanDuration>,
    pub flapping_stable_after: Option<HumanDuration>,
    pub queue_size: Option<usize>,
    pub max_age: Option<HumanDuration>,
    pub retry_initial: Option<HumanDuration>,
    pub retry_max: Option<HumanDuration>,
    pub check_wait: Option<HumanDuration>,
    pub webhook: Option<Vec<RawWebhook>>,
    pub email: Option<RawEmail>,
    pub appinsights: Option<RawAppInsights>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawWebhook {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawEmail {
    pub to: Option<Vec<String>>,
    pub from: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAppInsights {
    pub connection_string: Option<String>,
    pub interval: Option<HumanDuration>,
    pub batch_size: Option<usize>,
    pub queue_size: Option<usize>,
    pub max_age: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub retry_initial: Option<HumanDuration>,
    pub retry_max: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawDaemon {
    pub interval: Option<HumanDuration>,
    pub history: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawRestart {
    pub enabled: Option<bool>,
    pub initial_delay: Option<HumanDuration>,
    pub factor: Option<u32>,
    pub max_delay: Option<HumanDuration>,
    pub stable_after: Option<HumanDuration>,
    pub hung_after: Option<HumanDuration>,
    pub verify_timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub public: Option<bool>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub header_timeout: Option<HumanDuration>,
    pub request_timeout: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawGrpc {
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    pub tcp_listen: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawWorker {
    pub unit: Option<String>,
    pub app_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawDisk {
    pub mounts: Option<Vec<PathBuf>>,
    pub warning_percent: Option<u8>,
    pub critical_percent: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawMemory {
    pub warning_percent: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawHeartbeat {
    pub paths: Option<Vec<PathBuf>>,
    pub stale_after: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawJournal {
    pub max_lookback: Option<HumanDuration>,
    pub patterns: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawCrashLoop {
    pub restarts: Option<u32>,
    pub window: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawDeadlines {
    pub service: Option<HumanDuration>,
    pub disk: Option<HumanDuration>,
    pub memory: Option<HumanDuration>,
    pub heartbeat: Option<HumanDuration>,
    pub journal: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawState {
    pub dir: Option<PathBuf>,
}

/// The validated configuration the agent runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The worker's systemd unit, e.g. `faucet_worker.service`.
    pub unit: String,
    /// The bot's checkout; the default heartbeat paths are derived from it.
    pub app_dir: PathBuf,
    /// Disk thresholds and mount points.
    pub disk: DiskConfig,
    /// Memory warning threshold, percent (strictly above warns).
    pub memory_warning_percent: u8,
    /// Heartbeat files and staleness threshold.
    pub heartbeat: HeartbeatConfig,
    /// Longest window the journal check looks back when it has nothing better.
    pub journal_max_lookback: Duration,
    /// Regular expressions that make a journal line an error whatever its priority.
    pub journal_patterns: Vec<String>,
    /// More restarts than this within `crash_loop_window` is a crash loop.
    pub crash_loop_restarts: u32,
    /// The window the daemon counts restarts in.
    pub crash_loop_window: Duration,
    /// Deadline of each probe.
    pub deadlines: Deadlines,
    /// Where the agent keeps its state files.
    pub state_dir: PathBuf,
    /// Daemon loop settings.
    pub daemon: DaemonConfig,
    /// Restart and backoff settings.
    pub restart: RestartConfig,
    /// HTTP endpoint.
    pub http: HttpConfig,
    /// gRPC endpoints.
    pub grpc: GrpcConfig,
    /// Notifications and telemetry.
    pub alerts: AlertsConfig,
}

/// `[alerts]`: policy, delivery and the sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Master switch (telemetry included).
    pub enabled: bool,
    /// When to notify.
    pub policy: PolicyConfig,
    /// Most undelivered notifications kept per sink (the oldest go first).
    pub queue_size: usize,
    /// Undelivered notifications older than this are dropped.
    pub max_age: Duration,
    /// Retry backoff of the notification sinks.
    pub retry: Backoff,
    /// How long `check --alert` waits for delivery before it exits.
    pub check_wait: Duration,
    /// Chat and HTTP webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Email over SMTP.
    pub email: Option<EmailConfig>,
    /// Azure Application Insights.
    pub appinsights: Option<AppInsightsConfig>,
}

/// The payload format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// Slack incoming webhook (attachments).
    Slack,
    /// Discord webhook (embeds).
    Discord,
    /// Microsoft Teams (Adaptive Card in a message).
    Teams,
    /// The full report JSON plus the notification.
    Generic,
}

impl WebhookKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Slack => "slack",
            WebhookKind::Discord => "discord",
            WebhookKind::Teams => "teams",
            WebhookKind::Generic => "generic",
        }
    }

    fn parse(text: &str) -> Option<WebhookKind> {
        [
            WebhookKind::Slack,
            WebhookKind::Discord,
            WebhookKind::Teams,
            WebhookKind::Generic,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Unique name (status output, outbox file).
    pub name: String,
    /// Payload format.
    pub kind: WebhookKind,
    /// The URL (a secret: it carries the token).
    pub url: Secret,
    /// The URL's host, the only part ever shown.
    pub host: String,
    /// Per-request timeout (connect included).
    pub timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS (local relays only).
    None,
}

impl SmtpTls {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }
}

/// Email over SMTP.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender.
    pub from: String,
    /// SMTP server.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// Login (with `password`), if set.
    pub user: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Connect and I/O timeout.
    pub timeout: Duration,
}

/// Azure Application Insights.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInsightsConfig {
    /// Parsed connection string.
    pub connection: ConnectionString,
    /// Metrics and availability are sent at most this often.
    pub interval: Duration,
    /// Most envelopes per request.
    pub batch_size: usize,
    /// Most envelopes queued (the oldest go first).
    pub queue_size: usize,
    /// Envelopes older than this are dropped (the service refuses items older than 48 h).
    pub max_age: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retry backoff.
    pub retry: Backoff,
}

/// `cryptobot-agent run` loop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Resource checks run at this fixed rate.
    pub interval: Duration,
    /// How much disk/memory history the status page keeps.
    pub history: Duration,
}

/// Restart with backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartConfig {
    /// Whether `run` restarts the worker.
    pub enabled: bool,
    /// Delay before the first restart of an episode.
    pub initial_delay: Duration,
    /// Each further restart waits this many times longer.
    pub factor: u32,
    /// Longest delay.
    pub max_delay: Duration,
    /// The backoff resets after the worker has run this long without trouble.
    pub stable_after: Duration,
    /// A running worker whose heartbeat is older than this is hung and gets restarted.
    pub hung_after: Duration,
    /// How long a restart may take to bring the worker to `active`.
    pub verify_timeout: Duration,
}

/// HTTP endpoint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Listen address; `None` disables HTTP.
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer token that opens `/metrics` and `/` to clients outside loopback.
    pub token: Option<String>,
    /// Serve `/metrics` and `/` to everyone (no token needed).
    pub public: bool,
    /// Most connections open at once, all clients together.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// Longest time the request head (request line and headers) may take to arrive, also on an
    /// idle keep-alive connection.
    pub header_timeout: Duration,
    /// Longest time handling a request may take.
    pub request_timeout: Duration,
}

/// gRPC endpoint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcConfig {
    /// Unix socket with the full API.
    pub socket: PathBuf,
    /// Group owning the socket (mode 0660); `None` keeps the agent's own group.
    pub socket_group: Option<String>,
    /// TCP listen address; `None` disables TCP.
    pub tcp_listen: Option<std::net::SocketAddr>,
    /// Bearer token required for mutating RPCs over TCP (refused when unset).
    pub token: Option<String>,
}

/// Disk check settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskConfig {
    /// Mount points to watch.
    pub mounts: Vec<PathBuf>,
    /// Usage strictly above this warns.
    pub warning_percent: u8,
    /// Usage strictly above this is critical.
    pub critical_percent: u8,
}

/// Heartbeat check settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Candidate files; the freshest wins.
    pub paths: Vec<PathBuf>,
    /// Older than this (strictly) is stale.
    pub stale_after: Duration,
}

/// The deadline of each probe: a probe that takes longer is UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct Deadlines {
    pub service: Duration,
    pub disk: Duration,
    pub memory: Duration,
    pub heartbeat: Duration,
    pub journal: Duration,
}

const DEFAULT_APP_DIR: &str = "/home/azureuser/Repositories/cryptobot";
/// The journal check's default error markers: the bot's error levels (it logs every line at info),
/// and the start of a Python traceback.
pub const DEFAULT_JOURNAL_PATTERNS: [&str; 2] = [
    r"\[(ERROR|CRITICAL)\]",
    r"^Traceback \(most recent call last\):",
];

/// The heartbeat files of the bot: the live writer's `/tmp` file first, then the checkout's.
pub fn default_heartbeat_paths(app_dir: &Path) -> Vec<PathBuf> {
    vec![
        PathBuf::from("/tmp/cryptobot_heartbeat"),
        app_dir.join("logs").join("heartbeat.txt"),
    ]
}

impl Default for Config {
    fn default() -> Self {
        let app_dir = PathBuf::from(DEFAULT_APP_DIR);
        Config {
            unit: "faucet_worker.service".into(),
            heartbeat: HeartbeatConfig {
                paths: default_heartbeat_paths(&app_dir),
                stale_after: Duration::from_secs(300),
            },
            app_dir,
            disk: DiskConfig {
                mounts: vec![PathBuf::from("/")],
                warning_percent: 80,
                critical_percent: 90,
            },
            memory_warning_percent: 90,
            journal_max_lookback: Duration::from_secs(15 * 60),
            journal_patterns: DEFAULT_JOURNAL_PATTERNS.map(String::from).to_vec(),
            crash_loop_restarts: 5,
            crash_loop_window: Duration::from_secs(15 * 60),
            deadlines: Deadlines {
                service: Duration::from_secs(5),
                disk: Duration::from_secs(3),
                memory: Duration::from_secs(2),
                heartbeat: Duration::from_secs(2),
                journal: Duration::from_secs(10),
            },
            state_dir: PathBuf::from("/var/lib/cryptobot-agent"),
            daemon: DaemonConfig {
                interval: Duration::from_secs(60),
                history: Duration::from_secs(6 * 3600),
            },
            restart: RestartConfig {
                enabled: true,
                initial_delay: Duration::from_secs(10),
                factor: 2,
                max_delay: Duration::from_secs(300),
                stable_after: Duration::from_secs(300),
                hung_after: Duration::from_secs(600),
                verify_timeout: Duration::from_secs(30),
            },
            http: HttpConfig {
                listen: Some(std::net::SocketAddr::from(([0, 0, 0, 0], 8080))),
                token: None,
                public: false,
                max_connections: 1024,
                max_connections_per_ip: 32,
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(10),
            },
            grpc: GrpcConfig {
                socket: PathBuf::from("/run/cryptobot-agent/agent.sock"),
                socket_group: None,
                tcp_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 50051))),
                token: None,
            },
            alerts: AlertsConfig::default(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            policy: PolicyConfig::default(),
            queue_size: 100,
            max_age: Duration::from_secs(24 * 3600),
            retry: Backoff {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
            check_wait: Duration::from_secs(20),
            webhooks: Vec::new(),
            email: None,
            appinsights: None,
        }
    }
}

/// Defaults of a sink section that is present.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
const AI_BATCH: usize = 100;
const AI_QUEUE: usize = 2000;
const AI_MAX_AGE: Duration = Duration::from_secs(48 * 3600);
const AI_TIMEOUT: Duration = Duration::from_secs(10);
const AI_RETRY: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(300),
};

/// The environment variables the original monitor read, consulted when the file does not set
/// the value.
pub mod env {
    /// Application Insights connection string.
    pub const CONNECTION_STRING: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
    /// Webhook URL (the original read this one first).
    pub const WEBHOOK_OLD: &str = "CRYPTOBOT_ALERT_WEBHOOK";
    /// Webhook URL.
    pub const WEBHOOK: &str = "ALERT_WEBHOOK_URL";
    /// Email recipient(s), comma-separated.
    pub const EMAIL: &str = "ALERT_EMAIL";
    /// SMTP server.
    pub const SMTP_HOST: &str = "SMTP_HOST";
    /// SMTP port.
    pub const SMTP_PORT: &str = "SMTP_PORT";
    /// SMTP login.
    pub const SMTP_USER: &str = "SMTP_USER";
    /// SMTP password.
    pub const SMTP_PASSWORD: &str = "SMTP_PASSWORD";
    /// Not a variable: the machine's host name (for the default sender address), which the
    /// environment function hands in like the variables so that validation does no I/O.
    pub const HOST_NAME: &str = "(host name)";
}

/// The process environment (empty values count as unset), and the host name as [`env::HOST_NAME`].
pub fn process_env(name: &str) -> Option<String> {
    if name == env::HOST_NAME {
        return Some(
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        );
    }
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Loads `path`. When `explicit` is false and the file does not exist, the defaults are used.
    /// The original's environment variables fill in alert settings the file leaves unset.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse_with_env(&text, path, &process_env),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Config::from_raw_with_env(RawConfig::default(), &process_env).map_err(
                    |(key, message)| ConfigError::Invalid {
                        path: path.to_owned(),
                        key,
                        message,
                    },
                )
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and validates the text of a configuration file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, path, &|_| None)
    }

    /// Like [`Config::parse`], with `env` giving the environment variables of [`env`].
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Config::from_raw_with_env(raw, env).map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        })
    }

    /// Fills defaults in and validates; an error names the key and says what is wrong.
    pub fn from_raw(raw: RawConfig) -> Result<Config, (String, String)> {
        Config::from_raw_with_env(raw, &|_| None)
    }

    /// Like [`Config::from_raw`], with `env` giving the environment variables of [`env`].
    pub fn from_raw_with_env(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, (String, String)> {
        let d = Config::default();
        let invalid = |key: &str, message: String| Err((key.to_owned(), message));

        let worker = raw.worker.unwrap_or_default();
        let unit = worker.unit.unwrap_or(d.unit);
        if let Err(m) = validate_unit_name(&unit) {
            return invalid("worker.unit", m);
        }
        let app_dir = worker.app_dir.unwrap_or(d.app_dir);
        absolute("worker.app_dir", &app_dir)?;

        let disk = raw.disk.unwrap_or_default();
        let disk = DiskConfig {
            mounts: disk.mounts.unwrap_or(d.disk.mounts),
            warning_percent: disk.warning_percent.unwrap_or(d.disk.warning_percent),
            critical_percent: disk.critical_percent.unwrap_or(d.disk.critical_percent),
        };
        if disk.mounts.is_empty() {
            return invalid("disk.mounts", "needs at least one mount point".into());
        }
        for m in &disk.mounts {
            absolute("disk.mounts", m)?;
        }
        percent("disk.warning_percent", disk.warning_percent)?;
        percent("disk.critical_percent", disk.critical_percent)?;
        if disk.warning_percent > disk.critical_percent {
            return invalid(
                "disk.warning_percent",
                format!(
                    "{} is above disk.critical_percent ({})",
                    disk.warning_percent, disk.critical_percent
                ),
            );
        }

        let memory_warning_percent = raw
            .memory
            .and_then(|m| m.warning_percent)
            .unwrap_or(d.memory_warning_percent);
        percent("memory.warning_percent", memory_warning_percent)?;

        let hb = raw.heartbeat.unwrap_or_default();
        let paths = hb
            .paths
            .unwrap_or_else(|| default_heartbeat_paths(&app_dir));
        if paths.is_empty() {
            return invalid("heartbeat.paths", "needs at least one file".into());
        }
        for p in &paths {
            absolute("heartbeat.paths", p)?;
        }
        let stale_after = positive(
            "heartbeat.stale_after",
            hb.stale_after,
            d.heartbeat.stale_after,
        )?;

        let journal = raw.journal.unwrap_or_default();
        let journal_max_lookback = positive(
            "journal.max_lookback",
            journal.max_lookback,
            d.journal_max_lookback,
        )?;
        let journal_patterns = journal.patterns.unwrap_or(d.journal_patterns);
        for (i, p) in journal_patterns.iter().enumerate() {
            if p.is_empty() {
                return invalid(
                    "journal.patterns",
                    format!("pattern {i} is empty (it would make every line an error)"),
                );
            }
            if let Err(e) = regex_lite::Regex::new(p) {
                return invalid("journal.patterns", format!("pattern {i} ({p:?}): {e}"));
            }
        }
        let crash_loop = raw.crash_loop.unwrap_or_default();
        let crash_loop_restarts = crash_loop.restarts.unwrap_or(d.crash_loop_restarts);
        let crash_loop_window =
            positive("crash_loop.window", crash_loop.window, d.crash_loop_window)?;

        let dm = raw.daemon.unwrap_or_default();
        let daemon = DaemonConfig {
            interval: positive("daemon.interval", dm.interval, d.daemon.interval)?,
            history: positive("daemon.history", dm.history, d.daemon.history)?,
        };

        let rs = raw.restart.unwrap_or_default();
        let restart = RestartConfig {
            enabled: rs.enabled.unwrap_or(d.restart.enabled),
            initial_delay: positive(
                "restart.initial_delay",
                rs.initial_delay,
                d.restart.initial_delay,
            )?,
            factor: rs.factor.unwrap_or(d.restart.factor),
            max_delay: positive("restart.max_delay", rs.max_delay, d.restart.max_delay)?,
            stable_after: positive(
                "restart.stable_after",
                rs.stable_after,
                d.restart.stable_after,
            )?,
            hung_after: positive("restart.hung_after", rs.hung_after, d.restart.hung_after)?,
            verify_timeout: positive(
                "restart.verify_timeout",
                rs.verify_timeout,
                d.restart.verify_timeout,
            )?,
        };
        if restart.factor == 0 {
            return invalid("restart.factor", "must be at least 1".into());
        }
        if restart.max_delay < restart.initial_delay {
            return invalid(
                "restart.max_delay",
                "is shorter than restart.initial_delay".into(),
            );
        }

        let hp = raw.http.unwrap_or_default();
        let http = HttpConfig {
            listen: match hp.listen {
                None => d.http.listen,
                Some(l) => listen_address("http.listen", &l)?,
            },
            token: token("http.token", hp.token)?,
            public: hp.public.unwrap_or(d.http.public),
            max_connections: hp.max_connections.unwrap_or(d.http.max_connections),
            max_connections_per_ip: hp
                .max_connections_per_ip
                .unwrap_or(d.http.max_connections_per_ip),
            header_timeout: positive(
                "http.header_timeout",
                hp.header_timeout,
                d.http.header_timeout,
            )?,
            request_timeout: positive(
                "http.request_timeout",
                hp.request_timeout,
                d.http.request_timeout,
            )?,
        };
        if http.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1".into());
        }
        if http.max_connections_per_ip == 0 {
            return invalid("http.max_connections_per_ip", "must be at least 1".into());
        }

        let gp = raw.grpc.unwrap_or_default();
        let grpc = GrpcConfig {
            socket: gp.socket.unwrap_or(d.grpc.socket),
            socket_group: gp.socket_group,
            tcp_listen: match gp.tcp_listen {
                None => d.grpc.tcp_listen,
                Some(l) => listen_address("grpc.tcp_listen", &l)?,
            },
            token: token("grpc.token", gp.token)?,
        };
        absolute("grpc.socket", &grpc.socket)?;

        let dl = raw.deadlines.unwrap_or_default();
        let deadlines = Deadlines {
            service: positive("deadlines.service", dl.service, d.deadlines.service)?,
            disk: positive("deadlines.disk", dl.disk, d.deadlines.disk)?,
            memory: positive("deadlines.memory", dl.memory, d.deadlines.memory)?,
            heartbeat: positive("deadlines.heartbeat", dl.heartbeat, d.deadlines.heartbeat)?,
            journal: positive("deadlines.journal", dl.journal, d.deadlines.journal)?,
        };

        let state_dir = raw.state.and_then(|s| s.dir).unwrap_or(d.state_dir);
        absolute("state.dir", &state_dir)?;

        let alerts = alerts_from_raw(raw.alerts.unwrap_or_default(), env, daemon.interval)?;

        Ok(Config {
            unit,
            app_dir,
            disk,
            memory_warning_percent,
            heartbeat: HeartbeatConfig { paths, stale_after },
            journal_max_lookback,
            journal_patterns,
            crash_loop_restarts,
            crash_loop_window,
            deadlines,
            state_dir,
            daemon,
            restart,
            http,
            grpc,
            alerts,
        })
    }
}

fn alerts_from_raw(
    raw: RawAlerts,
    env: &dyn Fn(&str) -> Option<String>,
    interval: Duration,
) -> Result<AlertsConfig, (String, String)> {
    let d = AlertsConfig::default();
    let invalid = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
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
                    return Err((
                        key("kind"),
                        format!("{kind_text:?} is not slack, discord, teams or generic"),
                    ));
                };
                let Some(url) = w.url.filter(|u| !u.trim().is_empty()) else {
                    return Err((key("url"), "is required".into()));
                };
                let host = webhook_host(&url).map_err(|m| (key("url"), m))?;
                let timeout = positive(&key("timeout"), w.timeout, WEBHOOK_TIMEOUT)?;
                let name = w.name.unwrap_or_else(|| kind.as_str().to_owned());
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err((key("name"), "must be letters, digits, - _ .".into()));
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
                    (
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
    let conn_text = ai
        .connection_string
        .filter(|c| !c.trim().is_empty())
        .or_else(|| env(env::CONNECTION_STRING));
    let appinsights = match conn_text {
        None => None,
        Some(text) => {
            let connection = ConnectionString::parse(&text).map_err(|e| {
                (
                    "alerts.appinsights.connection_string".to_owned(),
                    e.to_string(),
                )
            })?;
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
    })
}

fn email_from_raw(
    raw: Option<RawEmail>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<EmailConfig>, (String, String)> {
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
            return Err((
                "alerts.email.to".into(),
                "needs at least one address".into(),
            ));
        }
        return Ok(None);
    }
    for a in &to {
        if !plausible_address(a) {
            return Err(("alerts.email.to".into(), format!("{a:?} is not an address")));
        }
    }
    let host = match raw.host.or_else(|| env(env::SMTP_HOST)) {
        Some(h) => h,
        // The original's default, kept for configurations made of environment variables only.
        None if !from_file => "smtp.gmail.com".to_owned(),
        None => return Err(("alerts.email.host".into(), "is required".into())),
    };
    let port = match raw.port {
        Some(p) => p,
        None => match env(env::SMTP_PORT) {
            Some(p) => p.trim().parse().map_err(|_| {
                (
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
            return Err((
                "alerts.email.tls".into(),
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
        return Err((
            "alerts.email.user".into(),
            "user and password go together".into(),
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
        return Err((
            "alerts.email.from".into(),
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

fn plausible_address(a: &str) -> bool {
    let a = a.trim();
    let addr = match (a.find('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => &a[l + 1..r],
        _ => a,
    };
    matches!(addr.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !addr.contains(char::is_whitespace))
}

/// The host of an http(s) URL; the message never contains the URL.
fn webhook_host(url: &str) -> Result<String, String> {
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
fn guess_webhook_kind(host: &str) -> WebhookKind {
    let h = host.to_ascii_lowercase();
    if h == "discord.com" || h == "discordapp.com" || h.ends_with(".discord.com") {
        WebhookKind::Discord
    } else if h.ends_with(".webhook.office.com") || h.ends_with(".logic.azure.com") {
        WebhookKind::Teams
    } else {
        WebhookKind::Slack
    }
}

fn absolute(key: &str, path: &Path) -> Result<(), (String, String)> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err((
            key.to_owned(),
            format!("{} is not an absolute path", path.display()),
        ))
    }
}

/// `"off"` disables a listener; anything else must be `ADDRESS:PORT`.
fn listen_address(key: &str, text: &str) -> Result<Option<std::net::SocketAddr>, (String, String)> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        (
            key.to_owned(),
            format!("{text:?} is not ADDRESS:PORT or \"off\""),
        )
    })
}

/// A bearer token: at least 16 characters of visible ASCII (never echoed in messages).
fn token(key: &str, value: Option<String>) -> Result<Option<String>, (String, String)> {
    match value {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(t)),
        Some(_) => Err((
            key.to_owned(),
            "must be at least 16 visible ASCII characters".into(),
        )),
    }
}

fn percent(key: &str, value: u8) -> Result<(), (String, String)> {
    if value <= 100 {
        Ok(())
    } else {
        Err((
            key.to_owned(),
            format!("{value} is not a percentage (0-100)"),
        ))
    }
}

fn positive(
    key: &str,
    value: Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, (String, String)> {
    match value {
        None => Ok(default),
        Some(HumanDuration(d)) if d.is_zero() => {
            Err((key.to_owned(), "must be longer than zero".into()))
        }
        // Far beyond any sensible setting, and keeps time arithmetic away from overflow.
        Some(HumanDuration(d)) if d > MAX_DURATION => {
            Err((key.to_owned(), "must be at most 10 years".into()))
        }
        Some(HumanDuration(d)) => Ok(d),
    }
}

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// A systemd service unit name: `name.service` with the characters systemd allows in unit names.
pub fn validate_unit_name(unit: &str) -> Result<(), String> {
    let Some(stem) = unit.strip_suffix(".service") else {
        return Err(format!(
            "{unit:?} is not a service unit name (it must end in .service)"
        ));
    };
    let ok = !stem.is_empty()
        && unit.len() <= 255
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{unit:?} is not a valid unit name"))
    }
}

impl fmt::Display for Config {
    /// The effective configuration, as TOML that `Config::parse` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        let paths = |p: &[PathBuf]| {
            let items: Vec<String> = p
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            format!("[{}]", items.join(", "))
        };
        writeln!(
            f,
            "[worker]\nunit = {:?}\napp_dir = {:?}\n",
            self.unit,
            self.app_dir.display().to_string()
        )?;
        writeln!(
            f,
            "[disk]\nmounts = {}\nwarning_percent = {}\ncritical_percent = {}\n",
            paths(&self.disk.mounts),
            self.disk.warning_percent,
            self.disk.critical_percent
        )?;
        writeln!(
            f,
            "[memory]\nwarning_percent = {}\n",
            self.memory_warning_percent
        )?;
        writeln!(
            f,
            "[heartbeat]\npaths = {}\nstale_after = {:?}\n",
            paths(&self.heartbeat.paths),
            dur(self.heartbeat.stale_after)
        )?;
        writeln!(
            f,
            "[journal]\nmax_lookback = {:?}\npatterns = [{}]\n",
            dur(self.journal_max_lookback),
            self.journal_patterns
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "[crash_loop]\nrestarts = {}\nwindow = {:?}\n",
            self.crash_loop_restarts,
            dur(self.crash_loop_window)
        )?;
        let dl = &self.deadlines;
        writeln!(
            f,
            "[deadlines]\nservice = {:?}\ndisk = {:?}\nmemory = {:?}\nheartbeat = {:?}\njournal = {:?}\n",
            dur(dl.service),
            dur(dl.disk),
            dur(dl.memory),
            dur(dl.heartbeat),
            dur(dl.journal)
        )?;
        writeln!(
            f,
            "[state]\ndir = {:?}\n",
            self.state_dir.display().to_string()
        )?;
        writeln!(
            f,
            "[daemon]\ninterval = {:?}\nhistory = {:?}\n",
            dur(self.daemon.interval),
            dur(self.daemon.history)
        )?;
        let r = &self.restart;
        write!(
            f,
            "[restart]\nenabled = {}\ninitial_delay = {:?}\nfactor = {}\nmax_delay = {:?}\n\
             stable_after = {:?}\nhung_after = {:?}\nverify_timeout = {:?}\n",
            r.enabled,
            dur(r.initial_delay),
            r.factor,
            dur(r.max_delay),
            dur(r.stable_after),
            dur(r.hung_after),
            dur(r.verify_timeout)
        )
    }
}

#[cfg(test)]
mod tests {
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
}

#[cfg(test)]
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

#[cfg(test)]
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
