//! `restart_backoff.json`: the agent's restart episode and the restarts counted for the crash-loop
//! check. Keeps the original keys (`restart_count`, `last_restart_time`, `backoff_seconds`) and reads
//! files in the original format (naive local ISO time or `null`, missing keys defaulted).

use std::{path::Path, time::Duration};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    config::RestartConfig,
    state::{StateError, load_json, save_json},
};

/// The file name under the state directory.
pub const FILE: &str = "restart_backoff.json";

/// Most restart times kept (the crash-loop window needs only a handful).
const MAX_RECENT: usize = 256;

/// Persisted restart state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffState {
    /// Restarts by the agent in the current episode (reset after the stable period).
    #[serde(default)]
    pub restart_count: u32,
    /// When the agent last restarted (or tried to restart) the worker.
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_restart_time: Option<DateTime<Utc>>,
    /// The delay before the next restart.
    #[serde(default = "default_backoff")]
    pub backoff_seconds: u64,
    /// Restarts (systemd's automatic ones and the agent's) still inside the crash-loop window.
    #[serde(default)]
    pub recent_restarts: Vec<DateTime<Utc>>,
    /// systemd's `NRestarts` as last seen, to count its automatic restarts across agent restarts.
    #[serde(default)]
    pub n_restarts_seen: Option<u32>,
    /// Since when the worker has needed a restart (the backoff delay counts from here).
    #[serde(default)]
    pub down_since: Option<DateTime<Utc>>,
}

fn default_backoff() -> u64 {
    10
}

/// Accepts RFC 3339, the original's naive local ISO time, or null.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|e| serde::de::Error::custom(format!("last_restart_time {text:?}: {e}")))?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| {
            serde::de::Error::custom(format!("last_restart_time {text:?} does not exist locally"))
        })
}

impl BackoffState {
    /// A fresh state.
    pub fn new(cfg: &RestartConfig) -> BackoffState {
        BackoffState {
            restart_count: 0,
            last_restart_time: None,
            backoff_seconds: cfg.initial_delay.as_secs().max(1),
            recent_restarts: Vec::new(),
            n_restarts_seen: None,
            down_since: None,
        }
    }

    /// Loads the state; a missing file is a fresh state, a corrupt one is moved aside (the error says
    /// where) and replaced by a fresh state.
    pub fn load(dir: &Path, cfg: &RestartConfig) -> (BackoffState, Option<StateError>) {
        match load_json::<BackoffState>(&dir.join(FILE)) {
            Ok(Some(s)) => (s, None),
            Ok(None) => (BackoffState::new(cfg), None),
            Err(e) => (BackoffState::new(cfg), Some(e)),
        }
    }

    /// Saves atomically.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        save_json(&dir.join(FILE), self)
    }

    /// The agent restarted (or tried to restart) the worker at `now`: count it and double the delay.
    pub fn record_attempt(&mut self, now: DateTime<Utc>, cfg: &RestartConfig) {
        self.restart_count = self.restart_count.saturating_add(1);
        self.last_restart_time = Some(now);
        self.backoff_seconds = next_delay(self.backoff_seconds, cfg);
        self.recent_restarts.push(now);
        // A manual restart resets systemd's counter; start counting from zero again.
        self.n_restarts_seen = Some(0);
        self.trim();
    }

    /// Starts a new episode: the next restart waits the initial delay again.
    pub fn reset(&mut self, cfg: &RestartConfig) {
        self.restart_count = 0;
        self.last_restart_time = None;
        self.backoff_seconds = cfg.initial_delay.as_secs().max(1);
    }

    /// Earliest time the next restart may happen, for a worker down since `down_since`.
    pub fn due_at(&self, down_since: DateTime<Utc>) -> DateTime<Utc> {
        let from = match self.last_restart_time {
            Some(last) if last > down_since => last,
            _ => down_since,
        };
        // The file may hold any number: a delay beyond chrono's range means "never", not a panic.
        i64::try_from(self.backoff_seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|delay| from.checked_add_signed(delay))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Takes systemd's `NRestarts` into account: each increase is an automatic restart at `now`. A
    /// decrease means the unit was started by hand, which resets the counter.
    pub fn observe_n_restarts(&mut self, n: u32, now: DateTime<Utc>) -> u32 {
        let added = match self.n_restarts_seen {
            Some(seen) if n > seen => n - seen,
            _ => 0,
        };
        for _ in 0..added.min(MAX_RECENT as u32) {
            self.recent_restarts.push(now);
        }
        self.n_restarts_seen = Some(n);
        self.trim();
        added
    }

    /// Restarts within `window` before `now`.
    pub fn restarts_within(&self, now: DateTime<Utc>, window: Duration) -> u32 {
        let start = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| now.checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let n = self
            .recent_restarts
            .iter()
            .filter(|t| **t > start && **t <= now)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Forgets restarts older than `window`.
    pub fn prune(&mut self, now: DateTime<Utc>, window: Duration) -> bool {
        let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let before = self.recent_restarts.len();
        self.recent_restarts.retain(|t| *t > start);
        before != self.recent_restarts.len()
    }

    fn trim(&mut self) {
        if self.recent_restarts.len() > MAX_RECENT {
            let excess = self.recent_restarts.len() - MAX_RECENT;
            self.recent_restarts.drain(..excess);
        }
    }
}

/// The delay after `current`: `factor` times longer, capped.
pub fn next_delay(current: u64, cfg: &RestartConfig) -> u64 {
    current
        .saturating_mul(u64::from(cfg.factor))
        .min(cfg.max_delay.as_secs())
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Found by the `backoff_state` fuzz target: a huge `backoff_seconds` in the file panicked in
    /// `chrono::Duration::seconds` (and a late base time overflowed the addition).
    #[test]
    fn absurd_delays_from_the_file_do_not_panic() {
        let now = Utc::now();
        for text in [
            r#"{"backoff_seconds":18446744073709551615}"#,
            r#"{"backoff_seconds":9223372036854775807}"#,
            r#"{"backoff_seconds":9223372036854775,"last_restart_time":"9999-12-31T23:59:59Z"}"#,
        ] {
            let state: BackoffState = serde_json::from_str(text).unwrap();
            assert!(state.due_at(now) > now, "{text}");
        }
        let state = BackoffState::new(&cfg());
        assert_eq!(state.restarts_within(now, Duration::MAX), 0);
    }

    fn cfg() -> RestartConfig {
        Config::default().restart
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_544_000 + s, 0).unwrap()
    }

    #[test]
    fn schedule_doubles_to_the_cap() {
        let c = cfg();
        let mut s = BackoffState::new(&c);
        let mut delays = vec![s.backoff_seconds];
        for i in 0..7 {
            s.record_attempt(t(i), &c);
            delays.push(s.backoff_seconds);
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        s.reset(&c);
        assert_eq!(
            (s.restart_count, s.last_restart_time, s.backoff_seconds),
            (0, None, 10)
        );
    }

    #[test]
    fn due_time_counts_from_the_crash_or_the_last_attempt() {
        let c = cfg();
        let mut s = BackoffState::new(&c);
        assert_eq!(s.due_at(t(100)), t(110), "crash 1 waits 10 s");
        s.record_attempt(t(110), &c);
        assert_eq!(s.due_at(t(200)), t(220), "crash 2 waits 20 s");
        // the attempt at 110 failed and the worker is still down since 100: next after 20 s more
        assert_eq!(s.due_at(t(100)), t(130));
    }

    #[test]
    fn loads_the_original_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            r#"{ "restart_count": 3, "last_restart_time": "2026-01-24T12:00:00.123456", "backoff_seconds": 80 }"#,
        )
        .unwrap();
        let (s, err) = BackoffState::load(dir.path(), &cfg());
        assert!(err.is_none());
        assert_eq!(s.restart_count, 3);
        assert_eq!(s.backoff_seconds, 80);
        let expected = Local
            .from_local_datetime(
                &NaiveDateTime::parse_from_str(
                    "2026-01-24T12:00:00.123456",
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .unwrap(),
            )
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(s.last_restart_time, Some(expected));
        std::fs::write(
            dir.path().join(FILE),
            r#"{"restart_count": 0, "last_restart_time": null}"#,
        )
        .unwrap();
        let (s, _) = BackoffState::load(dir.path(), &cfg());
        assert_eq!((s.last_restart_time, s.backoff_seconds), (None, 10));
    }

    #[test]
    fn round_trip_keeps_the_original_keys() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg();
        let mut s = BackoffState::new(&c);
        s.record_attempt(t(5), &c);
        s.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            &keys[..3],
            ["restart_count", "last_restart_time", "backoff_seconds"]
        );
        assert_eq!(BackoffState::load(dir.path(), &c).0, s);
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{\"restart_count\": \"many\"").unwrap();
        let (s, err) = BackoffState::load(dir.path(), &cfg());
        assert_eq!(s, BackoffState::new(&cfg()));
        assert!(matches!(err, Some(StateError::Corrupt { .. })), "{err:?}");
        assert!(!dir.path().join(FILE).exists());
    }

    #[test]
    fn crash_loop_counts_systemd_and_agent_restarts_in_the_window() {
        let c = cfg();
        let window = Duration::from_secs(900);
        let mut s = BackoffState::new(&c);
        assert_eq!(
            s.observe_n_restarts(2, t(0)),
            0,
            "the first sighting is a baseline"
        );
        assert_eq!(s.observe_n_restarts(5, t(10)), 3);
        s.record_attempt(t(20), &c);
        assert_eq!(
            s.observe_n_restarts(1, t(30)),
            1,
            "counter restarted from 0 after our restart"
        );
        assert_eq!(s.restarts_within(t(30), window), 5);
        assert_eq!(s.restarts_within(t(915), window), 2);
        assert!(s.prune(t(915), window));
        assert_eq!(s.recent_restarts.len(), 2);
    }
}
