//! How the agent restarts the worker as an unprivileged user, on both polkit generations.
//!
//! First it asks systemd over D-Bus (`ResetFailedUnit` + `RestartUnit`); on polkit 106 or newer the
//! shipped JavaScript rule (`deploy/cryptobot-agent.rules`) grants exactly that for the worker
//! unit. polkit 0.105 (Ubuntu 22.04, Debian 11) reads only `.pkla` files, which cannot name a unit,
//! so systemd answers `InteractiveAuthorizationRequired` there. Then the agent writes the request
//! file in its state directory instead; `cryptobot-worker-restart.path` watches it and starts
//! `cryptobot-worker-restart.service` (root), which resets the worker's failed state and restarts
//! it, and nothing else. The helper never reads the file, so nothing the agent writes there can
//! change what runs as root.
//!
//! Either way the caller then waits for a new activation of the worker ([`systemd::wait_active`]).

use std::{io::Write, path::Path};

use chrono::{DateTime, Utc};
use zbus::Connection;

use crate::systemd;

/// The request file's name inside the agent's state directory; the shipped path unit watches
/// `/var/lib/cryptobot-agent/restart-worker.request` (the default `[state] dir`).
pub const REQUEST_FILE: &str = "restart-worker.request";

/// The one unit the shipped helper restarts (`cryptobot-worker-restart.service` names it).
pub const HELPER_UNIT: &str = "faucet_worker.service";

/// The state directory whose request file the shipped path unit watches.
pub const HELPER_STATE_DIR: &str = "/var/lib/cryptobot-agent";

/// Why the shipped helper cannot restart `unit` for an agent keeping its state in `state_dir`
/// (`None` when it can): it restarts faucet_worker.service only, on a request in the default state
/// directory. Asking it for anything else would restart the wrong unit or nothing at all.
pub fn helper_mismatch(unit: &str, state_dir: &Path) -> Option<String> {
    if unit != HELPER_UNIT {
        Some(format!(
            "the restart helper (cryptobot-worker-restart.service) restarts {HELPER_UNIT} only, not \
             {unit}: grant the agent's user the restart of {unit} with polkit 106 or newer (edit the \
             unit in cryptobot-agent.rules), or edit the helper's unit"
        ))
    } else if state_dir != Path::new(HELPER_STATE_DIR) {
        Some(format!(
            "the restart helper's path unit watches {HELPER_STATE_DIR}/{REQUEST_FILE}, not {}: \
             keep [state] dir at {HELPER_STATE_DIR}, or edit cryptobot-worker-restart.path",
            state_dir.join(REQUEST_FILE).display()
        ))
    } else {
        None
    }
}

/// Which way the restart was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// systemd over D-Bus (root, or polkit granted it).
    Systemd,
    /// The root-owned helper, through its request file.
    Helper,
}

/// Asks for a restart of `unit` (resetting its failed state first when `reset_failed`): over
/// D-Bus, or through the helper when systemd refuses for lack of privilege.
pub async fn restart_worker(
    conn: &Connection,
    unit: &str,
    reset_failed: bool,
    state_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Via, String> {
    match systemd::restart_unit(conn, unit, reset_failed).await {
        Ok(()) => Ok(Via::Systemd),
        Err(e) if e.is_access_denied() => {
            if let Some(why) = helper_mismatch(unit, state_dir) {
                return Err(format!("{e}; {why}"));
            }
            let path = state_dir.join(REQUEST_FILE);
            request(&path, unit, now).map_err(|io| {
                format!(
                    "{e}; asking the restart helper through {} failed too: {io}",
                    path.display()
                )
            })?;
            tracing::info!(
                message = "systemd refused the restart; asked the restart helper.",
                request = %path.display()
            );
            Ok(Via::Helper)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the request file in place (truncate, one write, close): closing it after writing is
/// what the path unit's `PathChanged=` reacts to. Its text is for people only.
/// A symbolic link in its place is never followed (it is replaced), so the request can only ever
/// write this one file.
pub fn request(path: &Path, unit: &str, now: DateTime<Utc>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
    };
    let mut file = match open() {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            std::fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    writeln!(file, "{} restart {unit}", now.to_rfc3339())
}

/// What to add to a failed restart's message when the helper was asked: the likely cause.
pub fn hint(via: Via) -> &'static str {
    match via {
        Via::Systemd => "",
        Via::Helper => {
            " (asked the restart helper: is cryptobot-worker-restart.path installed and active?)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUEST_FILE);
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        request(&path, "faucet_worker.service", t).unwrap();
        request(&path, "faucet_worker.service", t).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "2026-01-02T03:04:05+00:00 restart faucet_worker.service\n"
        );
    }

    #[test]
    fn a_symbolic_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let path = dir.path().join(REQUEST_FILE);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        request(&path, "faucet_worker.service", Utc::now()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn the_helper_is_asked_only_for_what_it_does() {
        let default = Path::new(HELPER_STATE_DIR);
        assert_eq!(helper_mismatch("faucet_worker.service", default), None);
        let other_unit = helper_mismatch("other.service", default).unwrap();
        assert!(
            other_unit.contains("restarts faucet_worker.service only, not other.service"),
            "{other_unit}"
        );
        let other_dir = helper_mismatch("faucet_worker.service", Path::new("/srv/agent")).unwrap();
        assert!(
            other_dir.contains("not /srv/agent/restart-worker.request"),
            "{other_dir}"
        );
    }

    #[test]
    fn a_missing_state_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join(REQUEST_FILE);
        assert!(request(&path, "faucet_worker.service", Utc::now()).is_err());
    }
}
