//! Disk check: usage of each configured mount point, computed from `statvfs` the way `df` shows
//! `Use%` (used / (used + available to unprivileged users), rounded up). Strictly above the critical
//! threshold is CRITICAL `Disk usage critical: N%`, strictly above the warning threshold is WARNING
//! `Disk usage high: N%`. A mount point other than `/` is named in the text. The daemon also
//! forecasts when each mount will be full from its recent samples ([`crate::forecast`]); a forecast
//! at WARNING or CRITICAL level is `Disk /data will be full in about 5 h` unless the static
//! threshold already says as much or more.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Probe, ProbeError};
use crate::{
    config::DiskConfig,
    forecast::{self, Forecast, Level},
    health::{Alert, CheckOutcome, Status},
};

/// Usage of one file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// `df`'s Use%.
    pub percent: u8,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the file system in bytes.
    pub total_bytes: u64,
    /// Bytes still available to unprivileged users (what the forecast counts down).
    #[serde(skip)]
    pub available_bytes: u64,
    /// The file system's id (`f_fsid`), to notice another file system mounted there.
    #[serde(skip)]
    pub fsid: u64,
    /// The daemon's forecast for this mount; `None` from a one-shot check.
    #[serde(skip)]
    pub forecast: Option<Forecast>,
}

impl DiskUsage {
    /// This reading as a forecast sample taken at `at` ("full" is `df`'s 100 %: nothing left
    /// available to unprivileged users).
    pub fn sample(&self, at: std::time::SystemTime) -> forecast::Sample {
        forecast::Sample {
            at,
            used_bytes: self.used_bytes,
            total_bytes: self.used_bytes.saturating_add(self.available_bytes),
            device: self.fsid,
        }
    }
}

/// Reads the usage of the file system holding `mount`.
pub async fn probe(mount: PathBuf) -> Probe<DiskUsage> {
    let shown = mount.display().to_string();
    tokio::task::spawn_blocking(move || rustix::fs::statvfs(&mount))
        .await
        .map_err(|e| ProbeError::new(format!("statvfs {shown}: {e}")))?
        .map(|s| DiskUsage {
            fsid: s.f_fsid,
            ..usage(s.f_blocks, s.f_bfree, s.f_bavail, s.f_frsize)
        })
        .map_err(|e| ProbeError::new(format!("statvfs {shown}: {e}")))
}

/// `df`'s arithmetic on `statvfs` numbers.
pub fn usage(blocks: u64, bfree: u64, bavail: u64, frsize: u64) -> DiskUsage {
    let used = blocks.saturating_sub(bfree);
    let denominator = used.saturating_add(bavail);
    let percent = if denominator == 0 {
        0
    } else {
        // ceil(used * 100 / (used + avail)), in u128 so huge file systems cannot overflow.
        let p = (u128::from(used) * 100).div_ceil(u128::from(denominator));
        u8::try_from(p.min(100)).unwrap_or(100)
    };
    DiskUsage {
        percent,
        used_bytes: used.saturating_mul(frsize),
        total_bytes: blocks.saturating_mul(frsize),
        available_bytes: bavail.saturating_mul(frsize),
        fsid: 0,
        forecast: None,
    }
}

/// The check of one mount point.
pub fn assess(mount: &Path, reading: &Probe<DiskUsage>, cfg: &DiskConfig) -> CheckOutcome {
    let on = if mount == Path::new("/") {
        String::new()
    } else {
        format!(" on {}", mount.display())
    };
    let mut outcome = CheckOutcome::new(format!("disk:{}", mount.display())).threshold(format!(
        "warning > {}%, critical > {}%",
        cfg.warning_percent, cfg.critical_percent
    ));
    match reading {
        Err(e) => outcome.unknown("disk_unknown", format!("Disk usage unknown{on}: {e}")),
        Ok(u) => {
            outcome = outcome.value(format!("{}%", u.percent));
            let fixed = if u.percent > cfg.critical_percent {
                Some((
                    Status::Critical,
                    Alert::new(
                        "disk_critical",
                        format!("Disk usage critical: {}%{on}", u.percent),
                    ),
                ))
            } else if u.percent > cfg.warning_percent {
                Some((
                    Status::Warning,
                    Alert::new("disk_high", format!("Disk usage high: {}%{on}", u.percent)),
                ))
            } else {
                None
            };
            let filling = u.forecast.and_then(|f| {
                let status = match f.level {
                    Level::Clear => return None,
                    Level::Warning => Status::Warning,
                    Level::Critical => Status::Critical,
                };
                let text = format!(
                    "Disk {} will be full in {}",
                    mount.display(),
                    forecast::describe(f.full_in?)
                );
                Some((status, Alert::new("disk_filling", text)))
            });
            // The static threshold wins a tie: it is the fact, the forecast an estimate.
            match (fixed, filling) {
                (Some(a), Some(b)) if a.0 == Status::Warning && b.0 == Status::Critical => {
                    outcome.alert(b.0, b.1)
                }
                (Some((status, alert)), _) | (None, Some((status, alert))) => {
                    outcome.alert(status, alert)
                }
                (None, None) => outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DiskConfig {
        DiskConfig {
            mounts: vec![PathBuf::from("/")],
            warning_percent: 80,
            critical_percent: 90,
            forecast: Default::default(),
        }
    }

    #[test]
    fn percent_rounds_up_like_df() {
        // 1000 blocks, 100 free of which 50 available to users: used 900, 900/950 = 94.7 -> 95
        assert_eq!(usage(1000, 100, 50, 4096).percent, 95);
        assert_eq!(usage(1000, 1000, 1000, 4096).percent, 0);
        assert_eq!(usage(0, 0, 0, 4096).percent, 0);
        assert_eq!(usage(100, 0, 0, 1).percent, 100);
        assert_eq!(usage(u64::MAX, 0, 1, u64::MAX).percent, 100);
    }

    #[test]
    fn thresholds_are_strict() {
        let at = |p: u8| {
            assess(
                Path::new("/"),
                &Ok(DiskUsage {
                    percent: p,
                    used_bytes: 0,
                    total_bytes: 0,
                    ..DiskUsage::default()
                }),
                &cfg(),
            )
        };
        assert_eq!(at(80).status, Status::Healthy);
        assert_eq!(at(81).status, Status::Warning);
        assert_eq!(at(81).alert.unwrap().text, "Disk usage high: 81%");
        assert_eq!(at(90).status, Status::Warning);
        assert_eq!(at(93).status, Status::Critical);
        assert_eq!(at(93).alert.unwrap().text, "Disk usage critical: 93%");
    }

    #[test]
    fn other_mounts_are_named_and_failures_are_unknown() {
        let o = assess(
            Path::new("/data"),
            &Ok(DiskUsage {
                percent: 95,
                used_bytes: 0,
                total_bytes: 0,
                ..DiskUsage::default()
            }),
            &cfg(),
        );
        assert_eq!(o.alert.unwrap().text, "Disk usage critical: 95% on /data");
        let o = assess(
            Path::new("/"),
            &Err(ProbeError::new("timed out after 3s")),
            &cfg(),
        );
        assert_eq!(o.status, Status::Unknown);
        assert_eq!(
            o.alert.unwrap().text,
            "Disk usage unknown: timed out after 3s"
        );
    }

    #[test]
    fn a_forecast_warns_before_the_threshold_and_the_threshold_wins_ties() {
        let with = |percent: u8, level: Level, hours: u64| {
            let reading = DiskUsage {
                percent,
                forecast: Some(Forecast {
                    full_in: Some(std::time::Duration::from_secs(hours * 3600)),
                    level,
                }),
                ..DiskUsage::default()
            };
            assess(Path::new("/"), &Ok(reading), &cfg())
        };
        let o = with(60, Level::Warning, 5);
        assert_eq!(o.status, Status::Warning);
        let alert = o.alert.unwrap();
        assert_eq!(alert.kind, "disk_filling");
        assert_eq!(alert.text, "Disk / will be full in about 5 h");
        assert_eq!(with(60, Level::Clear, 5).status, Status::Healthy);
        assert_eq!(with(60, Level::Critical, 1).status, Status::Critical);
        // a static warning and a critical forecast: the forecast is worse
        assert_eq!(
            with(85, Level::Critical, 1).alert.unwrap().kind,
            "disk_filling"
        );
        // equal levels: the measured usage is the alert
        assert_eq!(with(85, Level::Warning, 5).alert.unwrap().kind, "disk_high");
        assert_eq!(
            with(95, Level::Critical, 1).alert.unwrap().kind,
            "disk_critical"
        );
        let data = DiskUsage {
            percent: 60,
            forecast: Some(Forecast {
                full_in: Some(std::time::Duration::from_secs(40 * 60)),
                level: Level::Critical,
            }),
            ..DiskUsage::default()
        };
        assert_eq!(
            assess(Path::new("/data"), &Ok(data), &cfg())
                .alert
                .unwrap()
                .text,
            "Disk /data will be full in about 40 min"
        );
    }

    #[test]
    fn a_sample_counts_down_what_users_can_still_write() {
        let u = DiskUsage {
            fsid: 7,
            ..usage(1000, 100, 50, 4096)
        };
        let s = u.sample(std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(s.used_bytes, 900 * 4096);
        assert_eq!(
            s.total_bytes,
            950 * 4096,
            "the root reserve is not space users have"
        );
        assert_eq!(s.device, 7);
    }
}
