//! Heartbeat check: how long ago the worker last wrote its heartbeat file.
//!
//! The bot rewrites the file in place (truncate, then write) with a float epoch such as
//! `1764544514.123456` on line 1 and three more lines. The freshest of the configured files wins.
//! The epoch on line 1 is preferred; when line 1 is not complete (an empty or half-written file, seen
//! mid-rewrite) or not a sane time, the file's mtime is used instead, so a rewrite in progress is
//! never mistaken for a dead worker. No file at all is WARNING `No heartbeat file found`; older than
//! the threshold is WARNING `Heartbeat is stale (Ns old)`; a file that exists but cannot be read is
//! UNKNOWN.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Probe, ProbeError};
use crate::health::{Alert, CheckOutcome, Status};

/// How far ahead of its mtime a file's epoch may be before it is not believed.
const MAX_CLOCK_SKEW_SECS: f64 = 60.0;
/// Only the first line matters; never read more than this.
const READ_LIMIT: u64 = 4096;

/// What the heartbeat files say.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Heartbeat {
    /// None of the configured files exists.
    Missing,
    /// The freshest file.
    Found {
        /// Which file.
        path: PathBuf,
        /// When it was last written.
        written_at: DateTime<Utc>,
        /// Whole seconds since then (never negative).
        age_seconds: i64,
        /// Where the time came from.
        source: TimeSource,
    },
}

/// Where a heartbeat time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The float epoch on line 1.
    Content,
    /// The file's modification time.
    Mtime,
}

/// Reads every configured file and keeps the freshest.
pub async fn probe(paths: &[PathBuf], now: DateTime<Utc>) -> Probe<Heartbeat> {
    let mut best: Option<Heartbeat> = None;
    let mut failures = Vec::new();
    for path in paths {
        match read_one(path).await {
            Ok(None) => {}
            Ok(Some((content, mtime))) => {
                let (written_at, source) = heartbeat_time(&content, mtime);
                let candidate = Heartbeat::Found {
                    path: path.clone(),
                    written_at,
                    age_seconds: age_seconds(now, written_at),
                    source,
                };
                best = Some(match best {
                    Some(b @ Heartbeat::Found { written_at: w, .. }) if w >= written_at => b,
                    _ => candidate,
                });
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    match best {
        Some(found) => Ok(found),
        None if failures.is_empty() => Ok(Heartbeat::Missing),
        None => Err(ProbeError::new(format!(
            "cannot read {}",
            failures.join("; ")
        ))),
    }
}

/// `Ok(None)` when the file does not exist.
async fn read_one(path: &Path) -> std::io::Result<Option<(Vec<u8>, DateTime<Utc>)>> {
    use tokio::io::AsyncReadExt;
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mtime: DateTime<Utc> = file
        .metadata()
        .await?
        .modified()
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .into();
    let mut content = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut content).await?;
    Ok(Some((content, mtime)))
}

/// The time a heartbeat file was written: line 1's epoch when it is complete and believable, else
/// the mtime.
pub fn heartbeat_time(content: &[u8], mtime: DateTime<Utc>) -> (DateTime<Utc>, TimeSource) {
    match parse_epoch(content) {
        Some(epoch) if epoch <= mtime.timestamp() as f64 + MAX_CLOCK_SKEW_SECS => {
            let micros = (epoch * 1e6).round() as i64;
            match DateTime::from_timestamp_micros(micros) {
                Some(t) => (t, TimeSource::Content),
                None => (mtime, TimeSource::Mtime),
            }
        }
        _ => (mtime, TimeSource::Mtime),
    }
}

/// The float epoch on line 1, if line 1 is complete (ends in a newline) and is a positive number.
pub fn parse_epoch(content: &[u8]) -> Option<f64> {
    let end = content.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&content[..end]).ok()?.trim();
    let epoch: f64 = line.parse().ok()?;
    (epoch.is_finite() && epoch > 0.0 && epoch < 1e11).then_some(epoch)
}

fn age_seconds(now: DateTime<Utc>, written_at: DateTime<Utc>) -> i64 {
    (now - written_at).num_seconds().max(0)
}

/// The heartbeat check.
pub fn assess(reading: &Probe<Heartbeat>, stale_after_secs: u64) -> CheckOutcome {
    let outcome = CheckOutcome::new("heartbeat").threshold(format!("stale > {stale_after_secs}s"));
    match reading {
        Err(e) => outcome.unknown("heartbeat_unknown", format!("Heartbeat unknown: {e}")),
        Ok(Heartbeat::Missing) => outcome.value("missing").alert(
            Status::Warning,
            Alert::new("heartbeat_missing", "No heartbeat file found"),
        ),
        Ok(Heartbeat::Found { age_seconds, .. }) => {
            let outcome = outcome.value(format!("{age_seconds}s"));
            if u64::try_from(*age_seconds).unwrap_or(0) > stale_after_secs {
                outcome.alert(
                    Status::Warning,
                    Alert::new(
                        "heartbeat_stale",
                        format!("Heartbeat is stale ({age_seconds}s old)"),
                    ),
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

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn epoch_needs_a_complete_first_line() {
        assert_eq!(
            parse_epoch(b"1764544514.123456\n0 jobs\n"),
            Some(1_764_544_514.123_456)
        );
        assert_eq!(parse_epoch(b"1764544514\n"), Some(1_764_544_514.0));
        assert_eq!(parse_epoch(b""), None);
        assert_eq!(parse_epoch(b"17645"), None, "half-written: no newline yet");
        assert_eq!(parse_epoch(b"abc\n"), None);
        assert_eq!(parse_epoch(b"nan\n"), None);
        assert_eq!(parse_epoch(b"-5\n"), None);
        assert_eq!(parse_epoch(b"\xff\xfe\n"), None);
    }

    #[test]
    fn content_is_preferred_and_mtime_is_the_fallback() {
        let mtime = t(1_764_544_600);
        let (at, src) = heartbeat_time(b"1764544514.5\n0 jobs\n0 running\nAccounts: None\n", mtime);
        assert_eq!((at.timestamp(), src), (1_764_544_514, TimeSource::Content));
        assert_eq!(heartbeat_time(b"", mtime), (mtime, TimeSource::Mtime));
        // an epoch far in the future of the file's own mtime is not believed
        assert_eq!(
            heartbeat_time(b"1964544514.5\n", mtime),
            (mtime, TimeSource::Mtime)
        );
    }

    #[test]
    fn staleness_is_strict() {
        let found = |age| {
            Ok(Heartbeat::Found {
                path: "/tmp/x".into(),
                written_at: t(0),
                age_seconds: age,
                source: TimeSource::Content,
            })
        };
        assert_eq!(assess(&found(300), 300).status, Status::Healthy);
        let o = assess(&found(412), 300);
        assert_eq!(o.status, Status::Warning);
        assert_eq!(o.alert.unwrap().text, "Heartbeat is stale (412s old)");
        let o = assess(&Ok(Heartbeat::Missing), 300);
        assert_eq!(o.alert.unwrap().text, "No heartbeat file found");
        assert_eq!(
            assess(&Err(ProbeError::new("x")), 300).status,
            Status::Unknown
        );
    }

    #[tokio::test]
    async fn freshest_file_wins_and_missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        let new = dir.path().join("new");
        std::fs::write(&old, "1000.0\n").unwrap();
        std::fs::write(&new, "2000.0\n").unwrap();
        let none = dir.path().join("none");
        let now = Utc::now();
        let hb = probe(&[none.clone(), old, new.clone()], now).await.unwrap();
        assert!(
            matches!(hb, Heartbeat::Found { ref path, .. } if *path == new),
            "{hb:?}"
        );
        assert_eq!(probe(&[none], now).await.unwrap(), Heartbeat::Missing);
    }

    #[tokio::test]
    async fn unreadable_file_is_an_error_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        // a directory cannot be read as a file
        let r = probe(&[dir.path().to_owned()], Utc::now()).await;
        assert!(r.is_err(), "{r:?}");
    }
}
