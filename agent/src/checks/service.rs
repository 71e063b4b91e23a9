//! Service check: the worker unit's state as systemd reports it over D-Bus.
//!
//! - `active` with sub-state `running` is healthy (`reloading` counts as active).
//! - `active` in another sub-state is CRITICAL `Service is not running`.
//! - `activating` is systemd bringing the unit (back) up: WARNING `Service is restarting (systemd
//!   auto-restart pending)` or `Service is starting`, never a reason to act on top of systemd.
//! - anything else (`inactive`, `failed`, `deactivating`, unit not found) is CRITICAL
//!   `Service is not active`.
//!
//! The crash-loop check reads systemd's own restart counter (`NRestarts`): more restarts than the
//! threshold is WARNING `Service has restarted N times - possible crash loop`.

use chrono::{DateTime, Utc};

use super::{Probe, ProbeError};
use crate::{
    health::{Alert, CheckOutcome, Status},
    systemd::{self, UnitFacts},
};

/// Reads the unit's facts, reusing `bus` when given.
pub async fn probe(bus: Option<&zbus::Connection>, unit: &str) -> Probe<UnitFacts> {
    let owned;
    let conn = match bus {
        Some(c) => c,
        None => {
            owned = systemd::connect()
                .await
                .map_err(|e| ProbeError::new(e.to_string()))?;
            &owned
        }
    };
    systemd::unit_facts(conn, unit)
        .await
        .map_err(|e| ProbeError::new(e.to_string()))
}

impl UnitFacts {
    /// `is-active` in the original's sense: the unit is up.
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    /// The main process is running.
    pub fn is_running(&self) -> bool {
        self.is_active() && self.sub_state == "running"
    }

    /// systemd will start the unit again by itself (its own `Restart=` delay is pending).
    pub fn auto_restart_pending(&self) -> bool {
        self.active_state == "activating" && self.sub_state == "auto-restart"
    }

    /// When the unit's current (or, if it is down, its last) invocation began. Automatic restarts
    /// move through `activating` rather than `inactive`, so the later of the two timestamps counts.
    pub fn invocation_start(&self) -> Option<DateTime<Utc>> {
        match (self.inactive_exit_timestamp, self.active_enter_timestamp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The service check.
pub fn assess(reading: &Probe<UnitFacts>) -> CheckOutcome {
    let outcome = CheckOutcome::new("service").threshold("active (running)");
    let facts = match reading {
        Err(e) => return outcome.unknown("service_unknown", format!("Service state unknown: {e}")),
        Ok(f) => f,
    };
    let outcome = outcome.value(if facts.load_state == "not-found" {
        "not found".to_owned()
    } else {
        format!("{} ({})", facts.active_state, facts.sub_state)
    });
    if facts.is_running() {
        outcome
    } else if facts.is_active() {
        outcome.alert(
            Status::Critical,
            Alert::new("service_not_running", "Service is not running"),
        )
    } else if facts.auto_restart_pending() {
        outcome.alert(
            Status::Warning,
            Alert::new(
                "service_restarting",
                "Service is restarting (systemd auto-restart pending)",
            ),
        )
    } else if facts.active_state == "activating" {
        outcome.alert(
            Status::Warning,
            Alert::new("service_starting", "Service is starting"),
        )
    } else {
        outcome.alert(
            Status::Critical,
            Alert::new("service_down", "Service is not active"),
        )
    }
}

/// The crash-loop check; `restarts` is the number of restarts counted (unknown when systemd could
/// not be asked).
pub fn assess_restarts(restarts: Option<u32>, threshold: u32) -> CheckOutcome {
    let outcome = CheckOutcome::new("restarts").threshold(format!("crash loop > {threshold}"));
    match restarts {
        // The service check already says why; no second UNKNOWN alert for the same cause.
        None => CheckOutcome {
            status: Status::Unknown,
            ..outcome
        },
        Some(n) if n > threshold => outcome.value(n.to_string()).alert(
            Status::Warning,
            Alert::new(
                "crash_loop",
                format!("Service has restarted {n} times - possible crash loop"),
            ),
        ),
        Some(n) => outcome.value(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(active: &str, sub: &str) -> UnitFacts {
        UnitFacts {
            name: "w.service".into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: "success".into(),
            n_restarts: 0,
            main_pid: 0,
            exec_main_code: 0,
            exec_main_status: 0,
            active_enter_timestamp: None,
            inactive_exit_timestamp: None,
            invocation_id: String::new(),
        }
    }

    fn text(o: &CheckOutcome) -> Option<&str> {
        o.alert.as_ref().map(|a| a.text.as_str())
    }

    #[test]
    fn states() {
        let cases = [
            ("active", "running", Status::Healthy, None),
            ("reloading", "running", Status::Healthy, None),
            (
                "active",
                "exited",
                Status::Critical,
                Some("Service is not running"),
            ),
            (
                "inactive",
                "dead",
                Status::Critical,
                Some("Service is not active"),
            ),
            (
                "failed",
                "failed",
                Status::Critical,
                Some("Service is not active"),
            ),
            (
                "deactivating",
                "stop-sigterm",
                Status::Critical,
                Some("Service is not active"),
            ),
            (
                "activating",
                "auto-restart",
                Status::Warning,
                Some("Service is restarting (systemd auto-restart pending)"),
            ),
            (
                "activating",
                "start",
                Status::Warning,
                Some("Service is starting"),
            ),
        ];
        for (a, s, status, alert) in cases {
            let o = assess(&Ok(facts(a, s)));
            assert_eq!((o.status, text(&o)), (status, alert), "{a}/{s}");
        }
    }

    #[test]
    fn unreachable_systemd_is_unknown_not_down() {
        let o = assess(&Err(ProbeError::new("cannot connect to the system bus")));
        assert_eq!(o.status, Status::Unknown);
        assert_eq!(
            text(&o),
            Some("Service state unknown: cannot connect to the system bus")
        );
        assert_eq!(assess_restarts(None, 5).status, Status::Unknown);
        assert!(assess_restarts(None, 5).alert.is_none());
    }

    #[test]
    fn crash_loop_is_strictly_above_the_threshold() {
        assert_eq!(assess_restarts(Some(5), 5).status, Status::Healthy);
        let o = assess_restarts(Some(7), 5);
        assert_eq!(o.status, Status::Warning);
        assert_eq!(
            text(&o),
            Some("Service has restarted 7 times - possible crash loop")
        );
    }

    #[test]
    fn invocation_start_is_the_later_timestamp() {
        let mut f = facts("active", "running");
        let t = |s| DateTime::from_timestamp(s, 0);
        assert_eq!(f.invocation_start(), None);
        f.inactive_exit_timestamp = t(10);
        assert_eq!(f.invocation_start(), t(10));
        f.active_enter_timestamp = t(50);
        assert_eq!(f.invocation_start(), t(50));
    }
}
