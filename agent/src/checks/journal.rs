//! Journal check: the worker unit's errors that are recent, i.e. newer than both the previous check
//! and the start of the unit's current invocation. An old error is reported once, never forever.
//! Any error is WARNING `Found N recent errors in logs`.
//!
//! An entry is an error when its priority is err or worse, or when its message carries one of the
//! error markers (`[journal] patterns`). The bot logs every line to stdout at priority 6 (info) in
//! the format `%(asctime)s [%(levelname)s] %(name)s - %(message)s`, so by default its `[ERROR]` and
//! `[CRITICAL]` lines are errors, and so is a Python traceback: `Traceback (most recent call
//! last):`, its indented frame lines and the exception line count once, as one error (chained
//! tracebacks included). `logger.exception` prints an `[ERROR]` line and a traceback: two errors,
//! since nothing in the journal tells its traceback from an uncaught one printed right after.
//!
//! The entries come from `journalctl -o json` (the journal's export format, not human text).

use std::{process::Stdio, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::process::Command;

use super::{Probe, ProbeError};
use crate::health::{Alert, CheckOutcome, Status};

/// At most this many entries (the newest) are read per check: every priority, since the bot logs
/// its errors at info.
const MAX_ENTRIES: usize = 10_000;
/// How Python begins a traceback.
const TRACEBACK: &str = "Traceback (most recent call last):";

/// Compiled error markers (`[journal] patterns`, validated when the configuration loads).
#[derive(Debug, Clone)]
pub struct ErrorMarkers(Vec<regex_lite::Regex>);

impl ErrorMarkers {
    /// Compiles the patterns; the error names the index and what is wrong.
    pub fn new(patterns: &[String]) -> Result<ErrorMarkers, (usize, String)> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| regex_lite::Regex::new(p).map_err(|e| (i, e.to_string())))
            .collect::<Result<_, _>>()
            .map(ErrorMarkers)
    }

    fn matches(&self, message: &str) -> bool {
        self.0.iter().any(|r| r.is_match(message))
    }
}

/// The errors among `entries` (oldest first): priority err or worse, or a marker; a traceback is
/// one error with its frame and exception lines.
pub fn errors(entries: Vec<JournalEntry>, markers: &ErrorMarkers) -> Vec<JournalEntry> {
    /// Where the previous entry left off.
    #[derive(PartialEq)]
    enum After {
        Other,
        /// Inside a counted traceback (indented lines belong to it; the first other line is the
        /// exception and ends it).
        Traceback,
        /// After its exception line: blank lines may come, then Python's chaining text.
        Exception,
        /// After the chaining text: the next traceback is the same error.
        Chained,
    }
    let chain_text = |m: &str| {
        m.starts_with("During handling of the above exception")
            || m.starts_with("The above exception was the direct cause")
    };
    let mut out = Vec::new();
    let mut after = After::Other;
    for e in entries {
        let msg = e.message.as_str();
        let marked = e.priority <= 3 || markers.matches(msg);
        match after {
            After::Traceback if msg.starts_with([' ', '\t']) => continue,
            // The exception line, unless it is an error line of its own (another thread's).
            After::Traceback if !marked => {
                after = After::Exception;
                continue;
            }
            After::Exception | After::Chained if msg.trim().is_empty() => continue,
            After::Exception if chain_text(msg) => {
                after = After::Chained;
                continue;
            }
            _ => {}
        }
        let chained = after == After::Chained;
        after = After::Other;
        if msg.starts_with(TRACEBACK) && (marked || chained) {
            if !chained {
                out.push(e);
            }
            after = After::Traceback;
        } else if marked {
            out.push(e);
        }
    }
    out
}

/// At most this many messages are kept in the report.
const KEPT_MESSAGES: usize = 5;

/// Error entries of the unit in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalErrors {
    /// Start of the window (exclusive).
    pub since: DateTime<Utc>,
    /// End of the window (inclusive): the next check starts here.
    pub until: DateTime<Utc>,
    /// Number of entries in the window.
    pub count: usize,
    /// The newest few, oldest first.
    pub recent: Vec<JournalEntry>,
    #[serde(skip)]
    entries: Vec<JournalEntry>,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// `__REALTIME_TIMESTAMP`.
    pub time: DateTime<Utc>,
    /// syslog priority, 0 (emerg) to 7 (debug).
    pub priority: u8,
    /// The message text (lossy UTF-8 for binary messages).
    pub message: String,
}

/// The start of the window: the end of the previous check, but never further back than
/// `max_lookback` (so a first check, or one after a long pause, does not dig up old history).
pub fn window_start(
    previous: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_lookback: Duration,
) -> DateTime<Utc> {
    let floor = now - chrono::Duration::from_std(max_lookback).unwrap_or(chrono::Duration::MAX);
    match previous {
        Some(p) if p > floor => p.min(now),
        _ => floor,
    }
}

impl JournalErrors {
    /// Keeps the errors (see [`errors`]) in `(since, until]`.
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>, errors: Vec<JournalEntry>) -> Self {
        let mut entries: Vec<_> = errors
            .into_iter()
            .filter(|e| e.time > since && e.time <= until)
            .collect();
        entries.sort_by_key(|e| e.time);
        let mut j = JournalErrors {
            since,
            until,
            count: 0,
            recent: Vec::new(),
            entries,
        };
        j.refresh();
        j
    }

    /// Drops entries older than the start of the unit's current invocation.
    pub fn since_invocation(mut self, invocation_start: Option<DateTime<Utc>>) -> Self {
        if let Some(start) = invocation_start {
            self.entries.retain(|e| e.time >= start);
            self.refresh();
        }
        self
    }

    fn refresh(&mut self) {
        self.count = self.entries.len();
        let skip = self.entries.len().saturating_sub(KEPT_MESSAGES);
        self.recent = self.entries[skip..].to_vec();
    }
}

/// Reads the unit's entries newer than `since` with `journalctl` and keeps its errors.
pub async fn probe(
    unit: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    patterns: &[String],
) -> Probe<JournalErrors> {
    let markers = ErrorMarkers::new(patterns)
        .map_err(|(i, e)| ProbeError::new(format!("journal.patterns[{i}]: {e}")))?;
    let output = Command::new("journalctl")
        .args(["--no-pager", "--quiet", "--output=json"])
        .arg(format!("--unit={unit}"))
        .arg(format!("--since=@{}", since.timestamp()))
        .arg(format!("--lines={MAX_ENTRIES}"))
        .arg("--output-fields=MESSAGE,PRIORITY")
        .stdin(Stdio::null())
        .env("SYSTEMD_COLORS", "0")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ProbeError::new(format!("cannot run journalctl: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let first = stderr.lines().next().unwrap_or("no message");
        return Err(ProbeError::new(format!(
            "journalctl failed ({}): {first}",
            output.status
        )));
    }
    // journalctl succeeds but hides the system journal from users without access to it.
    if stderr.contains("not seeing messages from other users and the system") {
        return Err(ProbeError::new(
            "no permission to read the system journal (the agent's user needs the systemd-journal group)",
        ));
    }
    let entries = parse_entries(&output.stdout).map_err(ProbeError::new)?;
    // With no journal files journalctl prints nothing and succeeds, which would read as "no
    // errors": an empty answer only counts when the journal exists.
    if entries.is_empty() && !journal_files_present(&JOURNAL_DIRS) {
        return Err(ProbeError::new(
            "no journal files in /run/log/journal or /var/log/journal (is systemd-journald running?)",
        ));
    }
    Ok(JournalErrors::new(since, until, errors(entries, &markers)))
}

/// Where journald keeps its files: volatile, then persistent.
const JOURNAL_DIRS: [&str; 2] = ["/run/log/journal", "/var/log/journal"];

/// Whether any of `dirs` holds a journal file (directly or in a machine-id directory).
pub fn journal_files_present(dirs: &[&str]) -> bool {
    let is_journal = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e == "journal" || e == "journal~")
    };
    dirs.iter().any(|dir| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            is_journal(&path)
                || std::fs::read_dir(&path)
                    .is_ok_and(|inner| inner.flatten().any(|f| is_journal(&f.path())))
        })
    })
}

/// Parses `journalctl -o json` output: one JSON object per line.
pub fn parse_entries(output: &[u8]) -> Result<Vec<JournalEntry>, String> {
    let mut entries = Vec::new();
    for (n, line) in output.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format!("journal entry {}: not JSON: {e}", n + 1))?;
        entries.push(parse_entry(&value).map_err(|e| format!("journal entry {}: {e}", n + 1))?);
    }
    Ok(entries)
}

fn parse_entry(v: &serde_json::Value) -> Result<JournalEntry, String> {
    let usec: i64 = v
        .get("__REALTIME_TIMESTAMP")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok())
        .ok_or("no __REALTIME_TIMESTAMP")?;
    let time = DateTime::from_timestamp_micros(usec).ok_or("__REALTIME_TIMESTAMP out of range")?;
    // PRIORITY is absent on some entries: journald's default for a stream is info.
    let priority = v
        .get("PRIORITY")
        .and_then(|p| p.as_str())
        .and_then(|p| p.parse::<u8>().ok())
        .unwrap_or(6);
    let message = match v.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => s.clone(),
        // binary-safe form: an array of byte values
        Some(serde_json::Value::Array(bytes)) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        // null: the field was too large for journalctl to print
        _ => String::new(),
    };
    Ok(JournalEntry {
        time,
        priority,
        message,
    })
}

/// The journal check.
pub fn assess(reading: &Probe<JournalErrors>) -> CheckOutcome {
    let outcome = CheckOutcome::new("journal").threshold("any error since the previous check");
    match reading {
        Err(e) => outcome.unknown("journal_unknown", format!("Journal errors unknown: {e}")),
        Ok(j) if j.count > 0 => outcome.value(j.count.to_string()).alert(
            Status::Warning,
            Alert::new(
                "journal_errors",
                format!("Found {} recent errors in logs", j.count),
            ),
        ),
        Ok(_) => outcome.value("0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_files_are_found_in_machine_id_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        assert!(!journal_files_present(&[&root, "/nonexistent-journal-dir"]));
        std::fs::create_dir(dir.path().join("0123abcd")).unwrap();
        assert!(!journal_files_present(&[&root]));
        std::fs::write(dir.path().join("0123abcd/system.journal"), b"").unwrap();
        assert!(journal_files_present(&["/nonexistent-journal-dir", &root]));
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn entry(secs: i64, prio: u8) -> JournalEntry {
        JournalEntry {
            time: t(secs),
            priority: prio,
            message: format!("m{secs}"),
        }
    }

    fn lines(text: &str) -> Vec<JournalEntry> {
        text.lines()
            .enumerate()
            .map(|(i, l)| JournalEntry {
                time: t(i as i64),
                priority: 6,
                message: l.to_owned(),
            })
            .collect()
    }

    fn defaults() -> ErrorMarkers {
        ErrorMarkers::new(&crate::config::DEFAULT_JOURNAL_PATTERNS.map(String::from)).unwrap()
    }

    fn error_lines(text: &str, markers: &ErrorMarkers) -> Vec<String> {
        errors(lines(text), markers)
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn the_bots_error_levels_and_a_bare_traceback_are_errors() {
        let log = "\
2026-01-24 10:15:02,481 [INFO] core.orchestrator - Scheduler started with 14 jobs
2026-01-24 10:16:40,002 [ERROR] faucets.firefaucet - Claim failed: TimeoutError
2026-01-24 10:16:41,002 [INFO] faucets.firefaucet - retrying after error, no error now
2026-01-24 10:16:42,002 [WARNING] core.proxy_manager - ⚠️ error rate high
2026-01-24 10:16:43,002 [ERROR] faucets.coinpayu - Claim failed: 🚫 captcha
2026-01-24 10:17:00,950 [CRITICAL] core.wallet_manager - Wallet RPC unreachable
Traceback (most recent call last):
  File \"/home/azureuser/Repositories/cryptobot/main.py\", line 12, in <module>
    from typing import Dict
NameError: name 'Dict' is not defined
2026-01-24 10:18:00,000 [INFO] core.orchestrator - ErrorHandler ready";
        let found = error_lines(log, &defaults());
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[3].starts_with("Traceback"));
    }

    #[test]
    fn logger_exception_is_two_errors_and_chained_tracebacks_are_one() {
        let log = "\
2026-01-24 10:16:40,002 [ERROR] core.orchestrator - Job crashed
Traceback (most recent call last):
  File \"x.py\", line 1, in <module>
ValueError: bad
Traceback (most recent call last):
  File \"y.py\", line 2, in f
KeyError: 'k'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"y.py\", line 4, in f
RuntimeError: worse
2026-01-24 10:16:41,000 [ERROR] core.orchestrator - next";
        let found = error_lines(log, &defaults());
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[1].starts_with("Traceback"));
        assert!(found[2].starts_with("Traceback"));
        assert!(found[3].ends_with("next"));
    }

    #[test]
    fn an_error_line_inside_a_traceback_is_not_its_exception_line() {
        let log = "\
Traceback (most recent call last):
  File \"x.py\", line 1, in <module>
2026-01-24 10:16:40,002 [ERROR] other.thread - failed
ValueError: bad";
        assert_eq!(error_lines(log, &defaults()).len(), 2);
    }

    #[test]
    fn priority_err_counts_and_markers_are_configurable() {
        let mut entries = lines("plain text\nFATAL: disk gone\n[ERROR] not ours");
        entries[0].priority = 3;
        let custom = ErrorMarkers::new(&["^FATAL:".to_owned()]).unwrap();
        let found: Vec<String> = errors(entries, &custom)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(found, ["plain text", "FATAL: disk gone"]);
        // without the traceback marker, a traceback is not an error
        let only_levels =
            ErrorMarkers::new(&[crate::config::DEFAULT_JOURNAL_PATTERNS[0].to_owned()]).unwrap();
        assert!(
            error_lines(
                "Traceback (most recent call last):\n  x\nE: y",
                &only_levels
            )
            .is_empty()
        );
        assert_eq!(
            ErrorMarkers::new(&["ok".into(), "(".into()]).unwrap_err().0,
            1
        );
    }

    #[test]
    fn parses_journalctl_json() {
        let out = br#"{"__REALTIME_TIMESTAMP":"1796092292999966","PRIORITY":"3","MESSAGE":"simulated error 1 of 2","__CURSOR":"s=1"}
{"__REALTIME_TIMESTAMP":"1796092293001539","PRIORITY":"2","MESSAGE":[104,105,255]}
{"__REALTIME_TIMESTAMP":"1796092293001540","MESSAGE":null}

"#;
        let e = parse_entries(out).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].message, "simulated error 1 of 2");
        assert_eq!(e[0].time.timestamp_micros(), 1_796_092_292_999_966);
        assert_eq!(e[1].priority, 2);
        assert_eq!(e[1].message, "hi\u{fffd}");
        assert_eq!((e[2].priority, e[2].message.as_str()), (6, ""));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_entries(b"not json\n").is_err());
        assert!(
            parse_entries(b"{\"MESSAGE\":\"x\"}\n")
                .unwrap_err()
                .contains("__REALTIME_TIMESTAMP")
        );
        assert!(parse_entries(b"{\"__REALTIME_TIMESTAMP\":\"99999999999999999999\"}\n").is_err());
        assert_eq!(parse_entries(b"").unwrap(), vec![]);
    }

    #[test]
    fn window_is_exclusive_at_the_start_and_inclusive_at_the_end() {
        let j = JournalErrors::new(
            t(100),
            t(200),
            vec![entry(100, 3), entry(150, 3), entry(200, 3), entry(201, 3)],
        );
        assert_eq!(j.count, 2);
        assert_eq!(
            j.recent
                .iter()
                .map(|e| e.time.timestamp())
                .collect::<Vec<_>>(),
            vec![150, 200]
        );
    }

    #[test]
    fn older_invocations_do_not_count() {
        let j = JournalErrors::new(
            t(0),
            t(1000),
            vec![entry(10, 3), entry(20, 3), entry(30, 3)],
        );
        assert_eq!(j.clone().since_invocation(Some(t(20))).count, 2);
        assert_eq!(j.since_invocation(None).count, 3);
    }

    #[test]
    fn window_start_uses_previous_check_within_the_lookback() {
        let now = t(10_000);
        let lookback = Duration::from_secs(900);
        assert_eq!(window_start(None, now, lookback), t(9_100));
        assert_eq!(window_start(Some(t(9_500)), now, lookback), t(9_500));
        assert_eq!(window_start(Some(t(1)), now, lookback), t(9_100));
        assert_eq!(
            window_start(Some(t(20_000)), now, lookback),
            now,
            "a clock step back"
        );
    }

    #[test]
    fn count_is_the_alert() {
        let j = JournalErrors::new(t(0), t(100), vec![entry(1, 3), entry(2, 3)]);
        let o = assess(&Ok(j));
        assert_eq!(o.status, Status::Warning);
        assert_eq!(o.alert.unwrap().text, "Found 2 recent errors in logs");
        assert_eq!(
            assess(&Ok(JournalErrors::new(t(0), t(1), vec![]))).status,
            Status::Healthy
        );
    }

    #[test]
    fn only_the_newest_messages_are_kept() {
        let j = JournalErrors::new(t(0), t(100), (1..=8).map(|s| entry(s, 3)).collect());
        assert_eq!(j.count, 8);
        assert_eq!(j.recent.len(), KEPT_MESSAGES);
        assert_eq!(j.recent[0].time, t(4));
    }
}
