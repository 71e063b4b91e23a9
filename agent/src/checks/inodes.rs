//! Inode check: the share of inodes in use on each watched mount (`statvfs`'s `f_files` and
//! `f_ffree`). A bot that writes many small files (browser profiles, caches, logs) can exhaust the
//! inodes of a file system long before its space: writes then fail with "No space left on device"
//! while `df` shows room. Strictly above the disk thresholds (`[disk] warning_percent`,
//! `critical_percent`) is WARNING `Inode usage high: N% on /data` or CRITICAL `Inode usage
//! critical: N% on /data`. A file system without a fixed inode table (`f_files` 0, as on btrfs)
//! has nothing to run out of and is HEALTHY.
//!
//! It is registered in [`super::CHECKS`]: its outcomes go wherever checks go (alerts, the JSON
//! `checks` list, Prometheus `cryptobot_check_status`, gRPC, the status page).

use std::path::Path;

use super::{Check, CheckFuture, ProbeError};
use crate::{
    config::{Config, DiskConfig},
    health::{Alert, CheckOutcome, Status},
};

/// The inode check.
#[derive(Debug, Clone, Copy)]
pub struct Inodes;

impl Check for Inodes {
    fn name(&self) -> &'static str {
        "inodes"
    }

    fn deadline(&self, config: &Config) -> std::time::Duration {
        config.deadlines.disk
    }

    fn run<'a>(&'a self, config: &'a Config) -> CheckFuture<'a> {
        Box::pin(async move {
            let mounts = config.disk.mounts.clone();
            let readings = tokio::task::spawn_blocking(move || {
                mounts
                    .into_iter()
                    .map(|m| {
                        let r = rustix::fs::statvfs(&m)
                            .map(|s| percent(s.f_files, s.f_ffree))
                            .map_err(|e| ProbeError::new(format!("statvfs {}: {e}", m.display())));
                        (m, r)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            readings
                .iter()
                .map(|(mount, r)| assess(mount, r, &config.disk))
                .collect()
        })
    }
}

/// Inodes in use, percent rounded up; `None` when the file system has no fixed inode table.
pub fn percent(files: u64, free: u64) -> Option<u8> {
    if files == 0 {
        return None;
    }
    let used = u128::from(files.saturating_sub(free));
    u8::try_from((used * 100).div_ceil(u128::from(files)).min(100)).ok()
}

/// The outcome for one mount.
pub fn assess(
    mount: &Path,
    reading: &Result<Option<u8>, ProbeError>,
    cfg: &DiskConfig,
) -> CheckOutcome {
    let on = mount.display();
    let outcome = CheckOutcome::new(format!("inodes:{on}")).threshold(format!(
        "warning > {}%, critical > {}%",
        cfg.warning_percent, cfg.critical_percent
    ));
    match reading {
        Err(e) => outcome.unknown(
            "inodes_unknown",
            format!("Inode usage unknown on {on}: {e}"),
        ),
        Ok(None) => outcome.value("no inode table"),
        Ok(Some(p)) => {
            let outcome = outcome.value(format!("{p}%"));
            if *p > cfg.critical_percent {
                let text = format!("Inode usage critical: {p}% on {on}");
                outcome.alert(Status::Critical, Alert::new("inodes_critical", text))
            } else if *p > cfg.warning_percent {
                let text = format!("Inode usage high: {p}% on {on}");
                outcome.alert(Status::Warning, Alert::new("inodes_high", text))
            } else {
                outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_up_and_knows_file_systems_without_inodes() {
        assert_eq!(percent(1000, 1000), Some(0));
        assert_eq!(percent(1000, 999), Some(1));
        assert_eq!(percent(1000, 0), Some(100));
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(u64::MAX, 0), Some(100));
    }

    #[test]
    fn thresholds_are_the_disk_ones_and_strict() {
        let cfg = Config::default().disk;
        let at = |p| assess(Path::new("/data"), &Ok(Some(p)), &cfg);
        assert_eq!(at(80).status, Status::Healthy);
        assert_eq!(at(81).alert.unwrap().text, "Inode usage high: 81% on /data");
        assert_eq!(at(91).status, Status::Critical);
        assert_eq!(at(91).alert.unwrap().kind, "inodes_critical");
        let none = assess(Path::new("/"), &Ok(None), &cfg);
        assert_eq!(
            (none.status, none.value.as_deref()),
            (Status::Healthy, Some("no inode table"))
        );
        let err = assess(Path::new("/"), &Err(ProbeError::new("gone")), &cfg);
        assert_eq!(err.status, Status::Unknown);
        assert_eq!(err.name, "inodes:/");
    }
}
