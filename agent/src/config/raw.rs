//! The configuration file as written: every setting optional, unknown keys rejected. Validation
//! (defaults, ranges, the environment's fallbacks) turns it into [`super::Config`].

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

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
    pub imds: Option<bool>,
    pub imds_endpoint: Option<String>,
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
    pub forecast_window: Option<HumanDuration>,
    pub forecast_min_history: Option<HumanDuration>,
    pub forecast_floor_percent: Option<u8>,
    pub full_within_warning: Option<HumanDuration>,
    pub full_within_critical: Option<HumanDuration>,
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
