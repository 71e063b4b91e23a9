//! The restart decisions the daemon and `check --restart` share, pure and with time as a
//! parameter: [`automatic`] (one pass of the restart policy over the worker's facts, including the
//! down-episode bookkeeping and the reset after a stable run) and [`answer`] (what to do with a
//! restart, pause, resume or reset request). The callers do the I/O: they load and save the state,
//! ask systemd, and reply.

use chrono::{DateTime, Utc};

use super::{
    maintenance::Pause,
    policy::{self, Decision, Need},
    state::BackoffState,
};
use crate::{config::RestartConfig, handle::Control, systemd::UnitFacts};

/// What the restart policy sees of the world at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// The worker unit's facts.
    pub facts: &'a UnitFacts,
    /// When the heartbeat file was last written, if there is one.
    pub heartbeat_written_at: Option<DateTime<Utc>>,
    /// A maintenance pause is in force.
    pub paused: bool,
    /// One of the agent's restarts is still being verified.
    pub in_flight: bool,
    /// The agent can reach systemd.
    pub connected: bool,
}

/// The outcome of one pass of [`automatic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to do now.
    pub decision: Decision,
    /// The worker ran long enough for the backoff to start over (and it did).
    pub backoff_reset: bool,
    /// The backoff state changed and should be saved.
    pub changed: bool,
}

/// Where a down episode began: set when the worker first needs a restart, kept while it still does
/// (or while a restart is being verified), and cleared once the worker needs nothing. The backoff
/// delay counts from this moment, so it is not restarted by every look at a worker that stays down.
pub fn episode(
    down_since: Option<DateTime<Utc>>,
    need: &Need,
    in_flight: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match need {
        Need::Restart { .. } => Some(down_since.unwrap_or(now)),
        Need::Nothing(_) if in_flight => down_since,
        Need::Nothing(_) => None,
    }
}

/// One pass of the restart policy: updates `backoff` (reset after a stable run, the episode) and
/// says whether to restart now, wait, or do nothing.
pub fn automatic(
    s: &Situation<'_>,
    backoff: &mut BackoffState,
    cfg: &RestartConfig,
    now: DateTime<Utc>,
) -> Step {
    let need = policy::need(s.facts, s.heartbeat_written_at, now, cfg);
    let mut changed = false;
    let backoff_reset =
        backoff.restart_count > 0 && policy::stable(s.facts, need.is_hang(), now, cfg);
    if backoff_reset {
        backoff.reset(cfg);
        changed = true;
    }
    let down_since = episode(backoff.down_since, &need, s.in_flight, now);
    if down_since != backoff.down_since {
        backoff.down_since = down_since;
        changed = true;
    }
    let allowed = cfg.enabled && !s.paused && !s.in_flight && s.connected;
    let decision = policy::decide(&need, down_since.unwrap_or(now), backoff, allowed, now);
    Step {
        decision,
        backoff_reset,
        changed,
    }
}

/// What to do with a [`Control`] request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Refuse, saying why.
    Refuse(&'static str),
    /// Not before `until` (the backoff); retry then or force.
    Defer {
        /// When the backoff allows a restart.
        until: DateTime<Utc>,
    },
    /// Restart the worker now.
    Restart {
        /// For the event history.
        reason: &'static str,
    },
    /// Record this pause.
    Pause(Pause),
    /// End the pause; `was_paused` says whether there was one to end.
    Resume {
        /// A pause was recorded.
        was_paused: bool,
    },
    /// Forget the backoff.
    ResetBackoff,
}

/// The answer to a request, given the backoff, the pause, whether a restart is in flight and the
/// time. A restart request waits for the backoff (`Defer`) unless forced, and is refused while
/// another restart is being verified, or while paused unless forced.
pub fn answer(
    control: &Control,
    backoff: &BackoffState,
    pause: Option<&Pause>,
    in_flight: bool,
    now: DateTime<Utc>,
) -> Action {
    match *control {
        Control::Restart { force } => {
            let paused = pause.is_some_and(|p| p.active_at(now));
            if in_flight {
                return Action::Refuse("a restart is already in progress");
            }
            if paused && !force {
                return Action::Refuse("restarts are paused (maintenance); use --force");
            }
            // The backoff counts from the last restart: retrying at the time a deferral names
            // restarts.
            match backoff.last_restart_time.map(|last| backoff.due_at(last)) {
                Some(until) if !force && until > now => Action::Defer { until },
                _ if force => Action::Restart {
                    reason: "restart requested (forced)",
                },
                _ => Action::Restart {
                    reason: "restart requested",
                },
            }
        }
        Control::Pause { duration } => Action::Pause(Pause {
            since: now,
            until: duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d),
        }),
        Control::Resume => Action::Resume {
            was_paused: pause.is_some(),
        },
        Control::ResetBackoff => Action::ResetBackoff,
    }
}

#[cfg(test)]
mod tests;
