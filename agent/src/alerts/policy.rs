//! When to tell people: a pure state machine over observed statuses, with the time as a parameter.
//!
//! - A change of status is told (`CRITICAL`, `WARNING`, `UNKNOWN`), and so is a new *kind* of alert
//!   while the status stays the same (kinds carry no numbers, so `Disk usage high: 81%` becoming
//!   `82%` is not new).
//! - The return to HEALTHY is told once as `RESOLVED`.
//! - While not healthy, a reminder goes out every `repeat_interval`, not every check.
//! - More than `flapping_changes` status changes within `flapping_window` send one `FLAPPING`
//!   notice; then nothing until the status has been stable for `flapping_stable_after`, when one
//!   notice says where it settled.
//! - Restart outcomes are told (`restarted`, `restart failed`, and once per episode the backoff
//!   reaching its cap).
//! - A maintenance pause silences everything; what is still wrong after the pause is told then.
//!
//! The state is serialisable so the daemon and `check --alert` (from cron) share it across runs.

use std::{
    collections::{BTreeSet, VecDeque},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::Status;

pub use crate::config::PolicyConfig;

/// What the policy sees of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Overall status.
    pub status: Status,
    /// The `kind` of every current alert.
    pub alert_kinds: Vec<String>,
    /// A maintenance pause is active.
    pub paused: bool,
}

/// How a restart by the agent ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RestartOutcome {
    /// The worker is active again.
    Restarted {
        /// What happened.
        message: String,
    },
    /// The restart did not bring the worker up.
    Failed {
        /// Why.
        message: String,
    },
    /// The backoff delay has reached its maximum (the worker keeps failing).
    BackoffAtCap {
        /// The delay waited before this restart.
        delay_seconds: u64,
    },
}

/// A decision to notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The status became (or settled at) a non-healthy one, or new kinds of alerts appeared.
    Problem {
        /// The current status.
        status: Status,
        /// The status people were last told, if it differs.
        previous: Option<Status>,
        /// Kinds not told before in this episode.
        new_kinds: Vec<String>,
    },
    /// Still not healthy after `repeat_interval`.
    Reminder {
        /// The current status.
        status: Status,
        /// When people were first told about this episode.
        since: Option<DateTime<Utc>>,
    },
    /// Back to HEALTHY.
    Resolved {
        /// The status people were last told.
        previous: Option<Status>,
    },
    /// Too many changes; quiet until stable.
    Flapping {
        /// Status changes within the window.
        changes: usize,
    },
    /// A restart outcome.
    Restart(RestartOutcome),
}

/// The policy's memory (persisted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyState {
    /// The status of the previous observation.
    #[serde(with = "opt_status")]
    pub last_seen: Option<Status>,
    /// The status people were last told (`None`: nothing yet).
    #[serde(with = "opt_status")]
    pub notified: Option<Status>,
    /// Alert kinds told in the current episode.
    pub kinds: BTreeSet<String>,
    /// When the current episode was first told.
    pub episode_since: Option<DateTime<Utc>>,
    /// When the last problem notice or reminder went out.
    pub last_sent: Option<DateTime<Utc>>,
    /// Recent status changes (within the flapping window).
    pub changes: VecDeque<DateTime<Utc>>,
    /// The most recent status change.
    pub last_change: Option<DateTime<Utc>>,
    /// Flapping since (notices suppressed).
    pub flapping_since: Option<DateTime<Utc>>,
    /// The backoff cap has been told in this episode.
    pub cap_told: bool,
}

fn since(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

impl PolicyState {
    /// Feeds one observation; returns what to tell (usually nothing).
    pub fn observe(
        &mut self,
        cfg: &PolicyConfig,
        obs: &Observation,
        now: DateTime<Utc>,
    ) -> Vec<Notice> {
        let changed = self.last_seen.is_some_and(|s| s != obs.status);
        self.last_seen = Some(obs.status);
        if changed {
            self.last_change = Some(now);
            if !obs.paused {
                self.changes.push_back(now);
            }
        }
        while self
            .changes
            .front()
            .is_some_and(|t| since(now, *t) > cfg.flapping_window)
        {
            self.changes.pop_front();
        }
        if obs.paused {
            return Vec::new();
        }
        if self.flapping_since.is_some() {
            let stable = self
                .last_change
                .is_none_or(|c| since(now, c) >= cfg.flapping_stable_after);
            if !stable {
                return Vec::new();
            }
            self.flapping_since = None;
            self.changes.clear();
            let previous = self.notified;
            return vec![if obs.status == Status::Healthy {
                self.resolve();
                Notice::Resolved { previous }
            } else {
                self.tell_problem(obs, now, true);
                Notice::Problem {
                    status: obs.status,
                    previous: None,
                    new_kinds: obs.alert_kinds.clone(),
                }
            }];
        }
        if self.changes.len() > cfg.flapping_changes as usize {
            self.flapping_since = Some(now);
            return vec![Notice::Flapping {
                changes: self.changes.len(),
            }];
        }
        if obs.status == Status::Healthy {
            let previous = self.notified;
            if previous.is_some_and(|p| p != Status::Healthy) {
                self.resolve();
                return vec![Notice::Resolved { previous }];
            }
            self.resolve();
            return Vec::new();
        }
        if self.notified != Some(obs.status) {
            let previous = self.notified.filter(|p| *p != Status::Healthy);
            let fresh = previous.is_none();
            let new_kinds = self.unseen(obs);
            self.tell_problem(obs, now, fresh);
            return vec![Notice::Problem {
                status: obs.status,
                previous,
                new_kinds,
            }];
        }
        let new_kinds = self.unseen(obs);
        if !new_kinds.is_empty() {
            self.tell_problem(obs, now, false);
            return vec![Notice::Problem {
                status: obs.status,
                previous: None,
                new_kinds,
            }];
        }
        if self
            .last_sent
            .is_none_or(|t| since(now, t) >= cfg.repeat_interval)
        {
            self.last_sent = Some(now);
            return vec![Notice::Reminder {
                status: obs.status,
                since: self.episode_since,
            }];
        }
        Vec::new()
    }

    /// A restart outcome; returns the notice, if it is to be told.
    pub fn restart(&mut self, outcome: RestartOutcome, paused: bool) -> Option<Notice> {
        if paused {
            return None;
        }
        match outcome {
            RestartOutcome::BackoffAtCap { .. } if self.cap_told => None,
            RestartOutcome::BackoffAtCap { .. } => {
                self.cap_told = true;
                Some(Notice::Restart(outcome))
            }
            _ if self.flapping_since.is_some() => None,
            _ => Some(Notice::Restart(outcome)),
        }
    }

    fn unseen(&self, obs: &Observation) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for k in &obs.alert_kinds {
            if !self.kinds.contains(k) && !out.contains(k) {
                out.push(k.clone());
            }
        }
        out
    }

    fn tell_problem(&mut self, obs: &Observation, now: DateTime<Utc>, new_episode: bool) {
        if new_episode || self.episode_since.is_none() {
            self.episode_since = Some(now);
        }
        self.notified = Some(obs.status);
        self.kinds.extend(obs.alert_kinds.iter().cloned());
        self.last_sent = Some(now);
    }

    fn resolve(&mut self) {
        self.notified = Some(Status::Healthy);
        self.kinds.clear();
        self.episode_since = None;
        self.last_sent = None;
        self.cap_told = false;
    }
}

/// `Status` as its upper-case word in state files.
mod opt_status {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::health::Status;

    pub fn serialize<S: Serializer>(s: &Option<Status>, ser: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_some(s.as_str()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Status>, D::Error> {
        let Some(word) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        super::parse_status(&word)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown status {word:?}")))
    }
}

/// The status named by its upper-case word.
pub fn parse_status(word: &str) -> Option<Status> {
    [
        Status::Healthy,
        Status::Unknown,
        Status::Warning,
        Status::Critical,
    ]
    .into_iter()
    .find(|s| s.as_str() == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_544_514, 0).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn obs(status: Status, kinds: &[&str]) -> Observation {
        Observation {
            status,
            alert_kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            paused: false,
        }
    }

    fn healthy() -> Observation {
        obs(Status::Healthy, &[])
    }

    fn critical() -> Observation {
        obs(Status::Critical, &["service_down"])
    }

    fn cfg() -> PolicyConfig {
        PolicyConfig {
            repeat_interval: Duration::from_secs(4 * 3600),
            flapping_changes: 3,
            flapping_window: Duration::from_secs(600),
            flapping_stable_after: Duration::from_secs(300),
        }
    }

    #[test]
    fn healthy_start_is_quiet_and_a_failure_is_told_once() {
        let mut p = PolicyState::default();
        assert!(p.observe(&cfg(), &healthy(), at(0)).is_empty());
        let n = p.observe(&cfg(), &critical(), at(60));
        assert_eq!(
            n,
            vec![Notice::Problem {
                status: Status::Critical,
                previous: None,
                new_kinds: vec!["service_down".into()],
            }]
        );
        for i in 2..200 {
            assert!(p.observe(&cfg(), &critical(), at(60 * i)).is_empty(), "{i}");
        }
    }

    #[test]
    fn first_observation_not_healthy_is_told() {
        let mut p = PolicyState::default();
        let n = p.observe(&cfg(), &critical(), at(0));
        assert!(matches!(
            &n[..],
            [Notice::Problem {
                status: Status::Critical,
                ..
            }]
        ));
    }

    #[test]
    fn reminder_after_repeat_interval_not_before() {
        let mut p = PolicyState::default();
        p.observe(&cfg(), &critical(), at(0));
        assert!(p.observe(&cfg(), &critical(), at(4 * 3600 - 1)).is_empty());
        let n = p.observe(&cfg(), &critical(), at(4 * 3600));
        assert_eq!(
            n,
            vec![Notice::Reminder {
                status: Status::Critical,
                since: Some(at(0))
            }]
        );
        assert!(p.observe(&cfg(), &critical(), at(4 * 3600 + 60)).is_empty());
        assert_eq!(p.observe(&cfg(), &critical(), at(8 * 3600)).len(), 1);
    }

    #[test]
    fn recovery_is_resolved_once() {
        let mut p = PolicyState::default();
        p.observe(&cfg(), &critical(), at(0));
        let n = p.observe(&cfg(), &healthy(), at(60));
        assert_eq!(
            n,
            vec![Notice::Resolved {
                previous: Some(Status::Critical)
            }]
        );
        assert!(p.observe(&cfg(), &healthy(), at(120)).is_empty());
        assert!(p.observe(&cfg(), &healthy(), at(5 * 3600)).is_empty());
    }

    #[test]
    fn new_kind_is_told_but_changing_numbers_are_not() {
        let mut p = PolicyState::default();
        p.observe(&cfg(), &healthy(), at(0));
        let n = p.observe(&cfg(), &obs(Status::Warning, &["disk_high"]), at(60));
        assert_eq!(n.len(), 1);
        // same kind, the text's number changes: the policy never sees texts, so nothing
        assert!(
            p.observe(&cfg(), &obs(Status::Warning, &["disk_high"]), at(120))
                .is_empty()
        );
        let n = p.observe(
            &cfg(),
            &obs(Status::Warning, &["disk_high", "heartbeat_stale"]),
            at(180),
        );
        assert_eq!(
            n,
            vec![Notice::Problem {
                status: Status::Warning,
                previous: None,
                new_kinds: vec!["heartbeat_stale".into()],
            }]
        );
        // a kind that went away and came back within the episode is not new
        p.observe(&cfg(), &obs(Status::Warning, &["heartbeat_stale"]), at(240));
        assert!(
            p.observe(
                &cfg(),
                &obs(Status::Warning, &["disk_high", "heartbeat_stale"]),
                at(300)
            )
            .is_empty()
        );
    }

    #[test]
    fn worse_and_better_statuses_are_told() {
        let mut p = PolicyState::default();
        p.observe(&cfg(), &obs(Status::Warning, &["heartbeat_stale"]), at(0));
        let n = p.observe(
            &cfg(),
            &obs(Status::Critical, &["heartbeat_stale", "service_down"]),
            at(60),
        );
        assert_eq!(
            n,
            vec![Notice::Problem {
                status: Status::Critical,
                previous: Some(Status::Warning),
                new_kinds: vec!["service_down".into()],
            }]
        );
        let n = p.observe(&cfg(), &obs(Status::Warning, &["heartbeat_stale"]), at(120));
        assert!(matches!(
            &n[..],
            [Notice::Problem {
                status: Status::Warning,
                previous: Some(Status::Critical),
                ..
            }]
        ));
    }

    #[test]
    fn flapping_sends_one_notice_then_settles() {
        let mut p = PolicyState::default();
        let c = cfg();
        let mut all = Vec::new();
        let mut t = 0;
        p.observe(&c, &healthy(), at(t));
        for i in 0..10 {
            t += 10;
            let o = if i % 2 == 0 { critical() } else { healthy() };
            all.extend(p.observe(&c, &o, at(t)));
        }
        let flapping: Vec<_> = all
            .iter()
            .filter(|n| matches!(n, Notice::Flapping { .. }))
            .collect();
        assert_eq!(flapping.len(), 1, "{all:?}");
        // 3 changes are told (CRITICAL, RESOLVED, CRITICAL), the 4th is FLAPPING, then quiet
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(matches!(all[3], Notice::Flapping { changes: 4 }));
        // stays quiet while stable for less than flapping_stable_after
        assert!(p.observe(&c, &healthy(), at(t + 299)).is_empty());
        // restart outcomes are quiet too while flapping
        assert_eq!(
            p.restart(
                RestartOutcome::Restarted {
                    message: "ok".into()
                },
                false
            ),
            None
        );
        // settled: one notice telling where it ended (last observation was healthy)
        let n = p.observe(&c, &healthy(), at(t + 300));
        assert!(matches!(&n[..], [Notice::Resolved { .. }]), "{n:?}");
        assert!(p.observe(&c, &healthy(), at(t + 400)).is_empty());
    }

    #[test]
    fn settling_not_healthy_after_flapping_is_told() {
        let mut p = PolicyState::default();
        let c = cfg();
        p.observe(&c, &healthy(), at(0));
        for i in 1..=4 {
            let o = if i % 2 == 1 { critical() } else { healthy() };
            p.observe(&c, &o, at(i * 10));
        }
        assert!(p.flapping_since.is_some());
        assert!(p.observe(&c, &critical(), at(50)).is_empty());
        let n = p.observe(&c, &critical(), at(50 + 300));
        assert!(
            matches!(
                &n[..],
                [Notice::Problem {
                    status: Status::Critical,
                    ..
                }]
            ),
            "{n:?}"
        );
    }

    #[test]
    fn pause_silences_and_what_remains_is_told_after() {
        let mut p = PolicyState::default();
        let c = cfg();
        p.observe(&c, &healthy(), at(0));
        let mut paused = critical();
        paused.paused = true;
        assert!(p.observe(&c, &paused, at(60)).is_empty());
        assert!(p.observe(&c, &paused, at(5 * 3600)).is_empty());
        assert_eq!(
            p.restart(
                RestartOutcome::Failed {
                    message: "x".into()
                },
                true
            ),
            None
        );
        // pause over, still down
        let n = p.observe(&c, &critical(), at(5 * 3600 + 60));
        assert!(matches!(&n[..], [Notice::Problem { .. }]));
        // a problem that came and went during the pause is never told
        let mut q = PolicyState::default();
        q.observe(&c, &healthy(), at(0));
        let mut pc = critical();
        pc.paused = true;
        let mut ph = healthy();
        ph.paused = true;
        q.observe(&c, &pc, at(10));
        q.observe(&c, &ph, at(20));
        assert!(q.observe(&c, &healthy(), at(30)).is_empty());
    }

    #[test]
    fn restart_outcomes_and_cap_once_per_episode() {
        let mut p = PolicyState::default();
        let c = cfg();
        p.observe(&c, &critical(), at(0));
        let r = RestartOutcome::Restarted {
            message: "ok".into(),
        };
        assert_eq!(p.restart(r.clone(), false), Some(Notice::Restart(r)));
        let cap = RestartOutcome::BackoffAtCap { delay_seconds: 300 };
        assert!(p.restart(cap.clone(), false).is_some());
        assert!(p.restart(cap.clone(), false).is_none());
        p.observe(&c, &healthy(), at(60));
        assert!(p.restart(cap, false).is_some());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut p = PolicyState::default();
        p.observe(&cfg(), &critical(), at(0));
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"CRITICAL\""), "{json}");
        let back: PolicyState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        // a restarted agent with the persisted state does not tell the same thing again
        let mut back = back;
        assert!(back.observe(&cfg(), &critical(), at(60)).is_empty());
    }
}
