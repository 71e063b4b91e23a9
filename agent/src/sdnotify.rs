//! The systemd notification protocol (`Type=notify`): ready, watchdog pings, status line, stopping.
//! Outside systemd (no `NOTIFY_SOCKET`, or an empty one) every call is a no-op; failures are
//! logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none_or(|s| s.is_empty()) {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(message = "Cannot notify systemd.", error = %e);
    }
}

/// The service is up: the first snapshot exists and the listeners are bound.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// One completed main-loop iteration.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The one-line status `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often the main loop must complete an iteration: a third of `WatchdogSec`, if it is set.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| (d / 3).max(Duration::from_millis(50)))
}
