//! Disk check: usage of each configured mount point, computed from `statvfs` the way `df` shows
//! `Use%` (used / (used + available to unprivileged users), rounded up). Strictly above the critical
//! threshold is CRITICAL `Disk usage critical: N%`, strictly above the warning threshold is WARNING
//! `Disk usage high: N%`. A mount point other than `/` is named in the text.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Probe, ProbeError};
use crate::{
    config::DiskConfig,
    health::{Alert, CheckOutcome, Status},
};

/// Usage of one file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// `df`'s Use%.
    pub percent: u8,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the file system in bytes.
    pub total_bytes: u64,
}

/// Reads the usage of the file system holding `mount`.
pub async fn probe(mount: PathBuf) -> Probe<DiskUsage> {
    let shown = mount.display().to_string();
    tokio::task::spawn_blocking(move || rustix::fs::statvfs(&mount))
        .await
        .map_err(|e| ProbeError::new(format!("statvfs {shown}: {e}")))?
        .map(|s| usage(s.f_blocks, s.f_bfree, s.f_bavail, s.f_frsize))
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
            if u.percent > cfg.critical_percent {
                outcome.alert(
                    Status::Critical,
                    Alert::new(
                        "disk_critical",
                        format!("Disk usage critical: {}%{on}", u.percent),
                    ),
                )
            } else if u.percent > cfg.warning_percent {
                outcome.alert(
                    Status::Warning,
                    Alert::new("disk_high", format!("Disk usage high: {}%{on}", u.percent)),
                )
            } else {
                outcome
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
}
