//! Everything the agent asks systemd, over D-Bus (zbus): the few `org.freedesktop.systemd1` methods
//! it calls, and the unit facts it reads. No `systemctl` text is ever parsed. This is the only module
//! that knows zbus.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use zbus::{
    Connection,
    names::InterfaceName,
    wire::{OwnedObjectPath, OwnedVariant},
};

/// Where systemd lives on the bus.
const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";

/// The systemd manager methods the agent uses.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// Loads (if needed) and returns the object path of a unit; works for units that do not exist
    /// (their LoadState is `not-found`).
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Asks systemd to emit unit signals to this client.
    fn subscribe(&self) -> zbus::Result<()>;
    /// Starts a unit; returns the job path.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Restarts a unit; returns the job path.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Clears a unit's failed state and start-limit counter.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
}

/// Why systemd could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// No connection to the system bus.
    #[error("cannot connect to the system bus{}: {source}", address_hint())]
    Connect {
        /// What zbus said.
        source: zbus::Error,
    },
    /// A call on the bus failed.
    #[error("{what}: {source}")]
    Call {
        /// The call that failed.
        what: &'static str,
        /// What zbus said.
        source: zbus::Error,
    },
}

impl SystemdError {
    /// systemd (asking polkit) refused the call for lack of privilege: `AccessDenied`, or
    /// `InteractiveAuthorizationRequired` where no rule grants it (polkit 0.105 ignores the
    /// JavaScript rule).
    pub fn is_access_denied(&self) -> bool {
        const DENIED: [&str; 2] = [
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
        ];
        match self {
            SystemdError::Call {
                source: zbus::Error::MethodError(name, ..),
                ..
            } => DENIED.contains(&name.as_str()),
            SystemdError::Call {
                source: zbus::Error::FDO(e),
                ..
            } => matches!(
                **e,
                zbus::fdo::Error::AccessDenied(_)
                    | zbus::fdo::Error::InteractiveAuthorizationRequired(_)
            ),
            SystemdError::Connect { .. } | SystemdError::Call { .. } => false,
        }
    }
}

fn address_hint() -> String {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) => format!(" at {a}"),
        Err(_) => String::new(),
    }
}

/// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set).
pub async fn connect() -> Result<Connection, SystemdError> {
    Connection::system()
        .await
        .map_err(|source| SystemdError::Connect { source })
}

/// The unit's object path (the unit is loaded if needed).
pub async fn unit_path(conn: &Connection, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
    let call = |what| move |source| SystemdError::Call { what, source };
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(call("systemd manager proxy"))?;
    manager.load_unit(unit).await.map_err(call("LoadUnit"))
}

/// Subscribes to systemd's signals and returns a stream of the unit's `PropertiesChanged` signals.
/// The stream ends when the connection is lost.
pub async fn watch_unit(
    conn: &Connection,
    unit: &str,
) -> Result<zbus::fdo::PropertiesChangedStream, SystemdError> {
    let call = |what| move |source| SystemdError::Call { what, source };
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(call("systemd manager proxy"))?;
    manager.subscribe().await.map_err(call("Subscribe"))?;
    let path = manager.load_unit(unit).await.map_err(call("LoadUnit"))?;
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(SYSTEMD)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(call("properties proxy"))?;
    props
        .receive_properties_changed()
        .await
        .map_err(|e| call("PropertiesChanged match rule")(e))
}

/// Restarts `unit` (clearing its failed state and start limit first when `reset_failed`).
pub async fn restart_unit(
    conn: &Connection,
    unit: &str,
    reset_failed: bool,
) -> Result<(), SystemdError> {
    let call = |what| move |source| SystemdError::Call { what, source };
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(call("systemd manager proxy"))?;
    if reset_failed {
        manager
            .reset_failed_unit(unit)
            .await
            .map_err(call("ResetFailedUnit"))?;
    }
    manager
        .restart_unit(unit, "replace")
        .await
        .map_err(call("RestartUnit"))?;
    Ok(())
}

/// Waits until `unit` is active in an activation that began at or after `since` (so a restart that
/// has not happened yet is not taken for done); the error says what state it was left in.
pub async fn wait_active(
    conn: &Connection,
    unit: &str,
    since: DateTime<Utc>,
    timeout: std::time::Duration,
) -> Result<UnitFacts, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match unit_facts(conn, unit).await {
            Ok(f) if f.is_active() && f.active_enter_timestamp.is_some_and(|t| t >= since) => {
                return Ok(f);
            }
            Ok(f) if f.is_active() => "still in the activation before the restart".to_owned(),
            Ok(f) => format!("{} ({}), result {}", f.active_state, f.sub_state, f.result),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "not active after {}: {last}",
                humantime::format_duration(timeout)
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Reads the facts of `unit` with two `GetAll` calls.
pub async fn unit_facts(conn: &Connection, unit: &str) -> Result<UnitFacts, SystemdError> {
    let call = |what| move |source| SystemdError::Call { what, source };
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(call("systemd manager proxy"))?;
    let path = manager.load_unit(unit).await.map_err(call("LoadUnit"))?;
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(SYSTEMD)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(call("properties proxy"))?;
    let unit_props = props
        .get_all(InterfaceName::from_static_str_unchecked(UNIT_IFACE))
        .await
        .map_err(|e| call("GetAll(Unit)")(e.into()))?;
    let service_props = props
        .get_all(InterfaceName::from_static_str_unchecked(SERVICE_IFACE))
        .await
        .map_err(|e| call("GetAll(Service)")(e.into()))?;
    Ok(UnitFacts::from_properties(
        unit,
        &unit_props,
        &service_props,
    ))
}

/// What systemd says about the worker unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFacts {
    /// Unit name.
    pub name: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `activating`, `inactive`, `failed`, ...
    pub active_state: String,
    /// `running`, `auto-restart`, `dead`, `failed`, ...
    pub sub_state: String,
    /// `success`, `exit-code`, `signal`, `start-limit-hit`, `watchdog`, ...
    pub result: String,
    /// Automatic restarts since the unit was last started by hand.
    pub n_restarts: u32,
    /// Main process id (0 when none), in the unit's pid namespace.
    pub main_pid: u32,
    /// How the main process last ended: 1 exited, 2 killed, 3 dumped (`CLD_*`), 0 not yet.
    pub exec_main_code: i32,
    /// Exit status or signal number of the main process.
    pub exec_main_status: i32,
    /// When the unit last entered `active`.
    pub active_enter_timestamp: Option<DateTime<Utc>>,
    /// When the current (or last) activation began.
    pub inactive_exit_timestamp: Option<DateTime<Utc>>,
    /// systemd's id of the current invocation, hex.
    pub invocation_id: String,
}

impl UnitFacts {
    /// Builds the facts from `GetAll` answers of the Unit and Service interfaces; a missing or
    /// mistyped property reads as empty or zero.
    pub fn from_properties(
        name: &str,
        unit: &HashMap<String, OwnedVariant>,
        service: &HashMap<String, OwnedVariant>,
    ) -> UnitFacts {
        let text = |m: &HashMap<String, OwnedVariant>, k: &str| {
            m.get(k)
                .and_then(|v| <&str>::try_from(v).ok())
                .unwrap_or_default()
                .to_owned()
        };
        let u32_of = |m: &HashMap<String, OwnedVariant>, k: &str| {
            m.get(k).and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
        };
        let i32_of = |k: &str| {
            service
                .get(k)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0)
        };
        let usec = |k: &str| {
            unit.get(k)
                .and_then(|v| u64::try_from(v).ok())
                .and_then(timestamp_from_usec)
        };
        let invocation_id = unit
            .get("InvocationID")
            .and_then(|v| v.try_clone().ok())
            .and_then(|v| Vec::<u8>::try_from(v).ok())
            .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        UnitFacts {
            name: name.to_owned(),
            load_state: text(unit, "LoadState"),
            active_state: text(unit, "ActiveState"),
            sub_state: text(unit, "SubState"),
            result: text(service, "Result"),
            n_restarts: u32_of(service, "NRestarts"),
            main_pid: u32_of(service, "MainPID"),
            exec_main_code: i32_of("ExecMainCode"),
            exec_main_status: i32_of("ExecMainStatus"),
            active_enter_timestamp: usec("ActiveEnterTimestamp"),
            inactive_exit_timestamp: usec("InactiveExitTimestamp"),
            invocation_id,
        }
    }
}

/// systemd timestamps are microseconds since the epoch, 0 meaning never.
fn timestamp_from_usec(usec: u64) -> Option<DateTime<Utc>> {
    if usec == 0 {
        return None;
    }
    DateTime::from_timestamp_micros(i64::try_from(usec).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::wire::Variant;

    fn props(items: Vec<(&str, Variant<'static>)>) -> HashMap<String, OwnedVariant> {
        items
            .into_iter()
            .map(|(k, v)| (k.to_owned(), OwnedVariant::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn facts_from_properties() {
        let unit = props(vec![
            ("LoadState", Variant::from("loaded")),
            ("ActiveState", Variant::from("active")),
            ("SubState", Variant::from("running")),
            (
                "ActiveEnterTimestamp",
                Variant::from(1_764_544_514_123_456u64),
            ),
            ("InactiveExitTimestamp", Variant::from(0u64)),
            ("InvocationID", Variant::from(vec![0xabu8, 0x01])),
        ]);
        let service = props(vec![
            ("Result", Variant::from("success")),
            ("NRestarts", Variant::from(7u32)),
            ("MainPID", Variant::from(42u32)),
            ("ExecMainCode", Variant::from(2i32)),
            ("ExecMainStatus", Variant::from(9i32)),
        ]);
        let f = UnitFacts::from_properties("w.service", &unit, &service);
        assert_eq!(f.active_state, "active");
        assert_eq!(f.sub_state, "running");
        assert_eq!(f.n_restarts, 7);
        assert_eq!(f.main_pid, 42);
        assert_eq!((f.exec_main_code, f.exec_main_status), (2, 9));
        assert_eq!(f.invocation_id, "ab01");
        assert_eq!(
            f.active_enter_timestamp.unwrap().to_rfc3339(),
            "2025-11-30T23:15:14.123456+00:00"
        );
        assert_eq!(f.inactive_exit_timestamp, None);
    }

    #[test]
    fn missing_or_mistyped_properties_read_as_empty() {
        let unit = props(vec![("ActiveState", Variant::from(3u32))]);
        let f = UnitFacts::from_properties("w.service", &unit, &HashMap::new());
        assert_eq!(f.active_state, "");
        assert_eq!(f.n_restarts, 0);
    }
}
