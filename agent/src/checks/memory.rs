//! Memory check: `(MemTotal - MemAvailable) / MemTotal` from `/proc/meminfo`, truncated to a whole
//! percent as the original did. Strictly above the threshold is WARNING `Memory usage high: N%`;
//! there is no critical level for memory.

use std::path::Path;

use serde::Serialize;

use super::{Probe, ProbeError};
use crate::health::{Alert, CheckOutcome, Status};

/// Memory use of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryUsage {
    /// Used share, whole percent, truncated.
    pub percent: u8,
    /// MemTotal, KiB.
    pub total_kib: u64,
    /// MemAvailable, KiB.
    pub available_kib: u64,
}

/// Reads `<proc>/meminfo`.
pub async fn probe(proc_root: &Path) -> Probe<MemoryUsage> {
    let path = proc_root.join("meminfo");
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| ProbeError::new(format!("reading {}: {e}", path.display())))?;
    parse_meminfo(&text).map_err(ProbeError::new)
}

/// Parses the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<MemoryUsage, String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .ok_or_else(|| format!("/proc/meminfo has no {name}"))?;
        let value = line[name.len() + 1..].trim();
        let number = value.strip_suffix("kB").unwrap_or(value).trim();
        number
            .parse::<u64>()
            .map_err(|_| format!("/proc/meminfo: {name} is not a number: {value:?}"))
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    if total == 0 {
        return Err("/proc/meminfo: MemTotal is 0".into());
    }
    let used = total.saturating_sub(available);
    let percent =
        u8::try_from((u128::from(used) * 100 / u128::from(total)).min(100)).unwrap_or(100);
    Ok(MemoryUsage {
        percent,
        total_kib: total,
        available_kib: available,
    })
}

/// The memory check.
pub fn assess(reading: &Probe<MemoryUsage>, warning_percent: u8) -> CheckOutcome {
    let outcome = CheckOutcome::new("memory").threshold(format!("warning > {warning_percent}%"));
    match reading {
        Err(e) => outcome.unknown("memory_unknown", format!("Memory usage unknown: {e}")),
        Ok(m) if m.percent > warning_percent => outcome.value(format!("{}%", m.percent)).alert(
            Status::Warning,
            Alert::new("memory_high", format!("Memory usage high: {}%", m.percent)),
        ),
        Ok(m) => outcome.value(format!("{}%", m.percent)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24577048 kB\nMemFree:        23000000 kB\nMemAvailable:   19661638 kB\nBuffers:           12345 kB\n";

    #[test]
    fn parses_meminfo() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total_kib, 24_577_048);
        assert_eq!(m.available_kib, 19_661_638);
        assert_eq!(m.percent, 20); // 4915410 / 24577048 = 20.0001 %, truncated as int() did
    }

    #[test]
    fn rejects_broken_meminfo() {
        assert!(parse_meminfo("").is_err());
        assert!(
            parse_meminfo("MemTotal: 10 kB\n")
                .unwrap_err()
                .contains("MemAvailable")
        );
        assert!(parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n").is_err());
        // MemAvailable above MemTotal (a lying kernel) is 0 %, not a panic
        assert_eq!(
            parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n")
                .unwrap()
                .percent,
            0
        );
    }

    #[test]
    fn threshold_is_strict_and_warning_only() {
        let at = |p| {
            assess(
                &Ok(MemoryUsage {
                    percent: p,
                    total_kib: 1,
                    available_kib: 0,
                }),
                90,
            )
        };
        assert_eq!(at(90).status, Status::Healthy);
        assert_eq!(at(99).status, Status::Warning);
        assert_eq!(at(99).alert.unwrap().text, "Memory usage high: 99%");
    }
}
