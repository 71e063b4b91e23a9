//! Agent configuration: a TOML file parsed into [`RawConfig`] (every field optional, unknown keys
//! rejected), then validated into [`Config`] (every field set, every value checked). Defaults live in
//! one place, [`Config::default`], so no file is needed at all.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub mod connection_string;
mod display;
pub mod raw;
pub mod secret;
mod sinks;
mod validate;

pub use raw::*;
pub use validate::{Invalid, validate_unit_name};

use connection_string::ConnectionString;
use secret::Secret;

pub use crate::forecast::ForecastSettings;

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
    /// Where the Application Insights sink reads the VM's resource id
    /// (`alerts.appinsights.imds`, `alerts.appinsights.imds_endpoint`).
    pub imds: ImdsConfig,
}

/// The Instance Metadata Service, for the VM's resource id on the telemetry.
#[derive(Debug, Clone, PartialEq)]
pub struct ImdsConfig {
    /// Whether to ask at all.
    pub enabled: bool,
    /// Where; `None`: the standard address, asked only on an Azure VM (by its DMI asset tag), so
    /// a machine elsewhere never sends to 169.254.169.254.
    pub endpoint: Option<String>,
    /// Connect and answer timeout.
    pub timeout: Duration,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        ImdsConfig {
            enabled: true,
            endpoint: None,
            timeout: Duration::from_secs(2),
        }
    }
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
    /// The disk-full forecast (the daemon's; a one-shot check has no history).
    pub forecast: ForecastSettings,
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
                forecast: ForecastSettings::default(),
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
            imds: ImdsConfig::default(),
        }
    }
}

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

#[cfg(test)]
mod tests;
