//! The effective configuration as TOML that [`super::Config::parse`] reads back (`config check`).

use std::{fmt, path::PathBuf, time::Duration};

use super::*;

impl fmt::Display for Config {
    /// The effective configuration, as TOML that `Config::parse` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dur = |d: Duration| humantime::format_duration(d).to_string();
        let paths = |p: &[PathBuf]| {
            let items: Vec<String> = p
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            format!("[{}]", items.join(", "))
        };
        writeln!(
            f,
            "[worker]\nunit = {:?}\napp_dir = {:?}\n",
            self.unit,
            self.app_dir.display().to_string()
        )?;
        writeln!(
            f,
            "[disk]\nmounts = {}\nwarning_percent = {}\ncritical_percent = {}\nforecast_window = {:?}\nforecast_min_history = {:?}\nforecast_floor_percent = {}\nfull_within_warning = {:?}\nfull_within_critical = {:?}\n",
            paths(&self.disk.mounts),
            self.disk.warning_percent,
            self.disk.critical_percent,
            dur(self.disk.forecast.window),
            dur(self.disk.forecast.min_history),
            self.disk.forecast.floor_percent,
            dur(self.disk.forecast.warning_within),
            dur(self.disk.forecast.critical_within),
        )?;
        writeln!(
            f,
            "[memory]\nwarning_percent = {}\n",
            self.memory_warning_percent
        )?;
        writeln!(
            f,
            "[heartbeat]\npaths = {}\nstale_after = {:?}\n",
            paths(&self.heartbeat.paths),
            dur(self.heartbeat.stale_after)
        )?;
        writeln!(
            f,
            "[journal]\nmax_lookback = {:?}\npatterns = [{}]\n",
            dur(self.journal_max_lookback),
            self.journal_patterns
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "[crash_loop]\nrestarts = {}\nwindow = {:?}\n",
            self.crash_loop_restarts,
            dur(self.crash_loop_window)
        )?;
        let dl = &self.deadlines;
        writeln!(
            f,
            "[deadlines]\nservice = {:?}\ndisk = {:?}\nmemory = {:?}\nheartbeat = {:?}\njournal = {:?}\n",
            dur(dl.service),
            dur(dl.disk),
            dur(dl.memory),
            dur(dl.heartbeat),
            dur(dl.journal)
        )?;
        writeln!(
            f,
            "[state]\ndir = {:?}\n",
            self.state_dir.display().to_string()
        )?;
        writeln!(
            f,
            "[daemon]\ninterval = {:?}\nhistory = {:?}\n",
            dur(self.daemon.interval),
            dur(self.daemon.history)
        )?;
        let r = &self.restart;
        write!(
            f,
            "[restart]\nenabled = {}\ninitial_delay = {:?}\nfactor = {}\nmax_delay = {:?}\n\
             stable_after = {:?}\nhung_after = {:?}\nverify_timeout = {:?}\n",
            r.enabled,
            dur(r.initial_delay),
            r.factor,
            dur(r.max_delay),
            dur(r.stable_after),
            dur(r.hung_after),
            dur(r.verify_timeout)
        )
    }
}
