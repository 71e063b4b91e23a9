//! The shared restart decisions with plain values: episodes, the automatic pass, control answers.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::{config::Config, restart::policy::Cause};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_544_000 + s, 0).unwrap()
}

fn cfg() -> RestartConfig {
    Config::default().restart
}

fn facts(active: &str, sub: &str, result: &str, started: i64) -> UnitFacts {
    UnitFacts {
        name: "w.service".into(),
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: sub.into(),
        result: result.into(),
        n_restarts: 0,
        main_pid: if active == "active" { 42 } else { 0 },
        exec_main_code: 0,
        exec_main_status: 0,
        active_enter_timestamp: Some(t(started)),
        inactive_exit_timestamp: Some(t(started)),
        invocation_id: String::new(),
    }
}

fn situation(facts: &UnitFacts) -> Situation<'_> {
    Situation {
        facts,
        heartbeat_written_at: None,
        paused: false,
        in_flight: false,
        connected: true,
    }
}

fn failed() -> Need {
    Need::Restart {
        cause: Cause::Failed {
            result: "exit-code".into(),
        },
        reset_failed: true,
    }
}

#[test]
fn an_episode_starts_once_and_ends_when_nothing_is_needed() {
    let started = episode(None, &failed(), false, t(10));
    assert_eq!(started, Some(t(10)));
    assert_eq!(
        episode(started, &failed(), false, t(50)),
        Some(t(10)),
        "a worker that stays down keeps its first down time"
    );
    let running = Need::Nothing("running");
    assert_eq!(
        episode(started, &running, true, t(60)),
        Some(t(10)),
        "kept while a restart is being verified"
    );
    assert_eq!(episode(started, &running, false, t(60)), None);
    assert_eq!(episode(None, &running, false, t(60)), None);
}

#[test]
fn a_crash_waits_the_delay_from_the_moment_it_was_first_seen() {
    let c = cfg();
    let mut b = BackoffState::new(&c);
    let down = facts("failed", "failed", "exit-code", 0);
    let first = automatic(&situation(&down), &mut b, &c, t(100));
    assert_eq!(first.decision, Decision::Wait { until: t(110) });
    assert!(first.changed && !first.backoff_reset);
    assert_eq!(b.down_since, Some(t(100)));
    let again = automatic(&situation(&down), &mut b, &c, t(105));
    assert_eq!(again.decision, Decision::Wait { until: t(110) });
    assert!(!again.changed, "nothing new to save");
    let due = automatic(&situation(&down), &mut b, &c, t(110));
    assert_eq!(
        due.decision,
        Decision::RestartNow {
            cause: Cause::Failed {
                result: "exit-code".into()
            },
            reset_failed: true,
            delay_seconds: 10,
        }
    );
}

#[test]
fn nothing_happens_while_paused_disabled_in_flight_or_disconnected() {
    let down = facts("failed", "failed", "signal", 0);
    let mut disabled = cfg();
    disabled.enabled = false;
    let variants: [(&str, Situation<'_>, RestartConfig); 4] = [
        (
            "paused",
            Situation {
                paused: true,
                ..situation(&down)
            },
            cfg(),
        ),
        ("disabled", situation(&down), disabled),
        (
            "in flight",
            Situation {
                in_flight: true,
                ..situation(&down)
            },
            cfg(),
        ),
        (
            "no bus",
            Situation {
                connected: false,
                ..situation(&down)
            },
            cfg(),
        ),
    ];
    for (name, s, c) in variants {
        let mut b = BackoffState::new(&c);
        let step = automatic(&s, &mut b, &c, t(1000));
        assert_eq!(step.decision, Decision::Nothing, "{name}");
        assert_eq!(
            b.down_since,
            Some(t(1000)),
            "{name}: the episode is still recorded"
        );
    }
}

#[test]
fn a_stable_run_resets_the_backoff_but_a_hung_one_does_not() {
    let c = cfg();
    let stable_after = chrono::Duration::from_std(c.stable_after)
        .unwrap()
        .num_seconds();
    let mut b = BackoffState::new(&c);
    b.record_attempt(t(0), &c);
    b.record_attempt(t(10), &c);
    let running = facts("active", "running", "success", 10);
    let early = automatic(&situation(&running), &mut b, &c, t(10 + stable_after - 1));
    assert!(!early.backoff_reset);
    assert_eq!(b.restart_count, 2);

    let mut hung = situation(&running);
    hung.heartbeat_written_at = Some(t(10));
    let mut h = b.clone();
    let when = t(10 + stable_after.max(100_000));
    let step = automatic(&hung, &mut h, &c, when);
    assert!(!step.backoff_reset, "a hung worker is not stable");
    assert!(matches!(
        step.decision,
        Decision::RestartNow {
            cause: Cause::Hung { .. },
            ..
        } | Decision::Wait { .. }
    ));

    let step = automatic(&situation(&running), &mut b, &c, t(10 + stable_after));
    assert!(step.backoff_reset && step.changed);
    assert_eq!((b.restart_count, b.last_restart_time), (0, None));
    assert_eq!(b.backoff_seconds, c.initial_delay.as_secs());
}

#[test]
fn restart_requests_respect_flight_pause_and_backoff() {
    let c = cfg();
    let now = t(1000);
    let fresh = BackoffState::new(&c);
    let plain = Control::Restart { force: false };
    let forced = Control::Restart { force: true };
    assert_eq!(
        answer(&plain, &fresh, None, false, now),
        Action::Restart {
            reason: "restart requested"
        }
    );
    assert_eq!(
        answer(&forced, &fresh, None, true, now),
        Action::Refuse("a restart is already in progress"),
        "even forced, one restart at a time"
    );
    let pause = Pause {
        since: t(0),
        until: None,
    };
    assert_eq!(
        answer(&plain, &fresh, Some(&pause), false, now),
        Action::Refuse("restarts are paused (maintenance); use --force")
    );
    assert_eq!(
        answer(&forced, &fresh, Some(&pause), false, now),
        Action::Restart {
            reason: "restart requested (forced)"
        }
    );
    let ended = Pause {
        since: t(0),
        until: Some(t(999)),
    };
    assert!(matches!(
        answer(&plain, &fresh, Some(&ended), false, now),
        Action::Restart { .. }
    ));

    let mut recent = fresh.clone();
    recent.record_attempt(t(995), &c);
    assert_eq!(
        answer(&plain, &recent, None, false, now),
        Action::Defer { until: t(995 + 20) }
    );
    assert!(matches!(
        answer(&forced, &recent, None, false, now),
        Action::Restart { .. }
    ));
    assert!(matches!(
        answer(&plain, &recent, None, false, t(1015)),
        Action::Restart { .. }
    ));
}

#[test]
fn pause_resume_and_reset_answers() {
    let c = cfg();
    let b = BackoffState::new(&c);
    let now = t(50);
    assert_eq!(
        answer(
            &Control::Pause {
                duration: Some(Duration::from_secs(600))
            },
            &b,
            None,
            false,
            now
        ),
        Action::Pause(Pause {
            since: now,
            until: Some(t(650))
        })
    );
    assert_eq!(
        answer(&Control::Pause { duration: None }, &b, None, false, now),
        Action::Pause(Pause {
            since: now,
            until: None
        })
    );
    let huge = Control::Pause {
        duration: Some(Duration::from_secs(u64::MAX)),
    };
    assert_eq!(
        answer(&huge, &b, None, false, now),
        Action::Pause(Pause {
            since: now,
            until: None
        }),
        "a duration beyond the calendar pauses until resumed"
    );
    let p = Pause {
        since: t(0),
        until: None,
    };
    assert_eq!(
        answer(&Control::Resume, &b, Some(&p), false, now),
        Action::Resume { was_paused: true }
    );
    assert_eq!(
        answer(&Control::Resume, &b, None, false, now),
        Action::Resume { was_paused: false }
    );
    assert_eq!(
        answer(&Control::ResetBackoff, &b, None, true, now),
        Action::ResetBackoff
    );
}

#[test]
fn causes_read_as_before() {
    let texts = [
        (
            Cause::Failed {
                result: "start-limit-hit".into(),
            },
            "worker failed (result: start-limit-hit)",
        ),
        (
            Cause::CrashedInactive {
                result: "signal".into(),
            },
            "worker inactive after a crash (result: signal)",
        ),
        (
            Cause::Hung {
                heartbeat_age_seconds: 601,
            },
            "worker hung (heartbeat 601s old)",
        ),
    ];
    for (cause, text) in texts {
        assert_eq!(cause.to_string(), text);
    }
}
