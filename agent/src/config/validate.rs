//! Validation: [`RawConfig`](super::RawConfig) with the defaults filled in, every value checked,
//! and an error that names the key; also the loading entry points and the field checks.

use std::{path::Path, time::Duration};

use super::{sinks::alerts_from_raw, *};

/// A value of the right type that is not acceptable: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    /// The dotted name of the key (or the environment variable it came from).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// The error for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Loads `path`. When `explicit` is false and the file does not exist, the defaults are used.
    /// The original's environment variables fill in alert settings the file leaves unset.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse_with_env(&text, path, &process_env),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Config::from_raw_with_env(RawConfig::default(), &process_env).map_err(
                    |Invalid { key, message }| ConfigError::Invalid {
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
        Config::from_raw_with_env(raw, env).map_err(|Invalid { key, message }| {
            ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            }
        })
    }

    /// Fills defaults in and validates; an error names the key and says what is wrong.
    pub fn from_raw(raw: RawConfig) -> Result<Config, Invalid> {
        Config::from_raw_with_env(raw, &|_| None)
    }

    /// Like [`Config::from_raw`], with `env` giving the environment variables of [`env`].
    pub fn from_raw_with_env(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Invalid> {
        let d = Config::default();
        let invalid = |key: &str, message: String| Err(Invalid::new(key, message));

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
            forecast: ForecastSettings {
                window: positive(
                    "disk.forecast_window",
                    disk.forecast_window,
                    d.disk.forecast.window,
                )?,
                min_history: positive(
                    "disk.forecast_min_history",
                    disk.forecast_min_history,
                    d.disk.forecast.min_history,
                )?,
                // Left unset, the floor never rises above the warning threshold.
                floor_percent: disk.forecast_floor_percent.unwrap_or(
                    d.disk
                        .forecast
                        .floor_percent
                        .min(disk.warning_percent.unwrap_or(d.disk.warning_percent)),
                ),
                warning_within: positive(
                    "disk.full_within_warning",
                    disk.full_within_warning,
                    d.disk.forecast.warning_within,
                )?,
                critical_within: positive(
                    "disk.full_within_critical",
                    disk.full_within_critical,
                    d.disk.forecast.critical_within,
                )?,
            },
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
        disk.forecast
            .validate(daemon.interval, disk.warning_percent)
            .map_err(|(key, message)| Invalid::new(key, message))?;

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

pub(super) fn absolute(key: &str, path: &Path) -> Result<(), Invalid> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Invalid::new(
            key.to_owned(),
            format!("{} is not an absolute path", path.display()),
        ))
    }
}

/// `"off"` disables a listener; anything else must be `ADDRESS:PORT`.
pub(super) fn listen_address(
    key: &str,
    text: &str,
) -> Result<Option<std::net::SocketAddr>, Invalid> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        Invalid::new(
            key.to_owned(),
            format!("{text:?} is not ADDRESS:PORT or \"off\""),
        )
    })
}

/// A bearer token: at least 16 characters of visible ASCII (never echoed in messages).
pub(super) fn token(key: &str, value: Option<String>) -> Result<Option<String>, Invalid> {
    match value {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.len() >= 16 && t.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(t)),
        Some(_) => Err(Invalid::new(
            key.to_owned(),
            "must be at least 16 visible ASCII characters",
        )),
    }
}

pub(super) fn percent(key: &str, value: u8) -> Result<(), Invalid> {
    if value <= 100 {
        Ok(())
    } else {
        Err(Invalid::new(
            key.to_owned(),
            format!("{value} is not a percentage (0-100)"),
        ))
    }
}

pub(super) fn positive(
    key: &str,
    value: Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, Invalid> {
    match value {
        None => Ok(default),
        Some(HumanDuration(d)) if d.is_zero() => {
            Err(Invalid::new(key.to_owned(), "must be longer than zero"))
        }
        // Far beyond any sensible setting, and keeps time arithmetic away from overflow.
        Some(HumanDuration(d)) if d > MAX_DURATION => {
            Err(Invalid::new(key.to_owned(), "must be at most 10 years"))
        }
        Some(HumanDuration(d)) => Ok(d),
    }
}

/// The longest duration any setting accepts.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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
