//! When the agent restarts the worker: pure decisions over unit facts, heartbeat, backoff and pause.
//!
//! The agent acts only when the worker is down and systemd will not bring it back by itself
//! (`failed`, including `start-limit-hit`, or `inactive` after a crash), or when it runs but is hung
//! (its heartbeat is older than `hung_after`). It never acts while systemd's own restart is pending
//! (`activating`/`auto-restart`), never on a unit stopped on purpose (`inactive` with result
//! `success`), never while paused, and never while one of its restarts is still being verified.

use chrono::{DateTime, Utc};

use super::state::BackoffState;
use crate::{config::RestartConfig, systemd::UnitFacts};

/// Why the worker needs the agent, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing to do, and why (for logs and tests).
    Nothing(&'static str),
    /// The worker needs a restart.
    Restart {
        /// Why.
        cause: Cause,
        /// The unit failed (maybe over its start limit): reset-failed before starting.
        reset_failed: bool,
    },
}

/// Why the worker needs a restart; its `Display` is the text people and the event history see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The unit is `failed`, with systemd's result.
    Failed {
        /// `Result=` (`exit-code`, `signal`, `start-limit-hit`…).
        result: String,
    },
    /// The unit is `inactive` after a run that did not end in `success`.
    CrashedInactive {
        /// `Result=`.
        result: String,
    },
    /// The unit runs but its heartbeat is older than `hung_after`.
    Hung {
        /// Age of the heartbeat in seconds.
        heartbeat_age_seconds: i64,
    },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Failed { result } => write!(f, "worker failed (result: {result})"),
            Cause::CrashedInactive { result } => {
                write!(f, "worker inactive after a crash (result: {result})")
            }
            Cause::Hung {
                heartbeat_age_seconds,
            } => write!(f, "worker hung (heartbeat {heartbeat_age_seconds}s old)"),
        }
    }
}

impl Need {
    /// The worker runs but is hung.
    pub fn is_hang(&self) -> bool {
        matches!(
            self,
            Need::Restart {
                cause: Cause::Hung { .. },
                ..
            }
        )
    }
}

/// Does the worker need a restart by the agent?
pub fn need(
    facts: &UnitFacts,
    heartbeat_written_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    cfg: &RestartConfig,
) -> Need {
    if facts.load_state == "not-found" {
        return Need::Nothing("the unit does not exist");
    }
    match facts.active_state.as_str() {
        // A failed unit may be over its start limit even when its Result does not say so (systemd
        // keeps the result of the last run when the limit stops an automatic restart), so its
        // failed state and start counter are always reset first: the agent's backoff takes over.
        "failed" => Need::Restart {
            cause: Cause::Failed {
                result: facts.result.clone(),
            },
            reset_failed: true,
        },
        "inactive" if facts.result != "success" && !facts.result.is_empty() => Need::Restart {
            cause: Cause::CrashedInactive {
                result: facts.result.clone(),
            },
            reset_failed: false,
        },
        "inactive" => Need::Nothing("stopped on purpose"),
        "activating" if facts.sub_state == "auto-restart" => {
            Need::Nothing("systemd's own restart is pending")
        }
        "activating" | "deactivating" | "reloading" => Need::Nothing("the unit is changing state"),
        "active" => match heartbeat_written_at {
            Some(written) if facts.is_running() => {
                let hung =
                    chrono::Duration::from_std(cfg.hung_after).unwrap_or(chrono::Duration::MAX);
                // The heartbeat must be older than the current run too: a worker that just started
                // has not written yet.
                let since_start = facts.active_enter_timestamp.map(|s| now - s);
                if now - written > hung && since_start.is_none_or(|d| d > hung) {
                    Need::Restart {
                        cause: Cause::Hung {
                            heartbeat_age_seconds: (now - written).num_seconds(),
                        },
                        reset_failed: false,
                    }
                } else {
                    Need::Nothing("running")
                }
            }
            _ => Need::Nothing("running"),
        },
        _ => Need::Nothing("unknown state"),
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Nothing,
    /// A restart is needed but the backoff delay has not passed.
    Wait {
        /// When it has.
        until: DateTime<Utc>,
    },
    /// Restart now.
    RestartNow {
        /// Why.
        cause: Cause,
        /// Reset the failed state first.
        reset_failed: bool,
        /// The backoff delay waited.
        delay_seconds: u64,
    },
}

/// Decides, given the need, when the need began, the backoff state and whether restarts are
/// allowed at all (`enabled`, not paused, none in flight).
pub fn decide(
    need: &Need,
    down_since: DateTime<Utc>,
    state: &BackoffState,
    allowed: bool,
    now: DateTime<Utc>,
) -> Decision {
    let Need::Restart {
        cause,
        reset_failed,
    } = need
    else {
        return Decision::Nothing;
    };
    if !allowed {
        return Decision::Nothing;
    }
    let due = state.due_at(down_since);
    if now < due {
        Decision::Wait { until: due }
    } else {
        Decision::RestartNow {
            cause: cause.clone(),
            reset_failed: *reset_failed,
            delay_seconds: state.backoff_seconds,
        }
    }
}

/// The worker has run long enough since its last start for the backoff to reset.
pub fn stable(facts: &UnitFacts, hung: bool, now: DateTime<Utc>, cfg: &RestartConfig) -> bool {
    let period = chrono::Duration::from_std(cfg.stable_after).unwrap_or(chrono::Duration::MAX);
    facts.is_running()
        && !hung
        && facts
            .active_enter_timestamp
            .is_some_and(|s| now - s >= period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_544_000 + s, 0).unwrap()
    }

    fn facts(active: &str, sub: &str, result: &str) -> UnitFacts {
        UnitFacts {
            name: "w.service".into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: result.into(),
            n_restarts: 0,
            main_pid: 1,
            exec_main_code: 0,
            exec_main_status: 0,
            active_enter_timestamp: Some(t(0)),
            inactive_exit_timestamp: Some(t(0)),
            invocation_id: String::new(),
        }
    }

    fn cfg() -> RestartConfig {
        Config::default().restart
    }

    fn restarts(n: &Need) -> bool {
        matches!(n, Need::Restart { .. })
    }

    #[test]
    fn acts_only_when_systemd_will_not() {
        let c = cfg();
        let now = t(100);
        assert!(restarts(&need(
            &facts("failed", "failed", "signal"),
            None,
            now,
            &c
        )));
        assert!(restarts(&need(
            &facts("inactive", "dead", "exit-code"),
            None,
            now,
            &c
        )));
        assert_eq!(
            need(&facts("inactive", "dead", "success"), None, now, &c),
            Need::Nothing("stopped on purpose")
        );
        assert_eq!(
            need(
                &facts("activating", "auto-restart", "signal"),
                None,
                now,
                &c
            ),
            Need::Nothing("systemd's own restart is pending")
        );
        assert!(!restarts(&need(
            &facts("active", "running", "success"),
            Some(t(99)),
            now,
            &c
        )));
        let mut missing = facts("inactive", "dead", "exit-code");
        missing.load_state = "not-found".into();
        assert!(!restarts(&need(&missing, None, now, &c)));
    }

    #[test]
    fn start_limit_hit_resets_failed_first() {
        let n = need(
            &facts("failed", "failed", "start-limit-hit"),
            None,
            t(1),
            &cfg(),
        );
        assert!(
            matches!(
                n,
                Need::Restart {
                    reset_failed: true,
                    ..
                }
            ),
            "{n:?}"
        );
    }

    #[test]
    fn hung_worker_is_restarted_after_hung_after() {
        let c = cfg(); // hung_after 600 s
        let f = facts("active", "running", "success");
        assert!(!restarts(&need(&f, Some(t(1000)), t(1600), &c)));
        let n = need(&f, Some(t(1000)), t(1601), &c);
        assert_eq!(
            n,
            Need::Restart {
                cause: Cause::Hung {
                    heartbeat_age_seconds: 601
                },
                reset_failed: false
            }
        );
        // no heartbeat file at all is not a hang (the heartbeat check warns about it)
        assert!(!restarts(&need(&f, None, t(5000), &c)));
        // a worker that started recently has not had time to write
        let mut fresh = f.clone();
        fresh.active_enter_timestamp = Some(t(1500));
        assert!(!restarts(&need(&fresh, Some(t(1000)), t(1601), &c)));
    }

    #[test]
    fn backoff_and_permission_gate_the_restart() {
        let c = cfg();
        let s = BackoffState::new(&c);
        let n = need(&facts("failed", "failed", "exit-code"), None, t(0), &c);
        assert_eq!(
            decide(&n, t(0), &s, true, t(5)),
            Decision::Wait { until: t(10) }
        );
        assert!(matches!(
            decide(&n, t(0), &s, true, t(10)),
            Decision::RestartNow {
                delay_seconds: 10,
                ..
            }
        ));
        assert_eq!(
            decide(&n, t(0), &s, false, t(10)),
            Decision::Nothing,
            "paused or disabled"
        );
        assert_eq!(
            decide(&Need::Nothing("running"), t(0), &s, true, t(10)),
            Decision::Nothing
        );
    }

    #[test]
    fn stability_needs_the_whole_period() {
        let c = cfg(); // 300 s
        let f = facts("active", "running", "success");
        assert!(!stable(&f, false, t(299), &c));
        assert!(stable(&f, false, t(300), &c));
        assert!(!stable(&f, true, t(300), &c), "a hung worker is not stable");
        assert!(!stable(
            &facts("failed", "failed", "signal"),
            false,
            t(900),
            &c
        ));
    }
}
