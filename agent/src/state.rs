//! State files under the state directory. Every write is atomic (temporary file in the same
//! directory, fsync, rename, fsync of the directory), so a crash at any moment leaves either the old
//! or the new content. A file that cannot be parsed is moved aside (never deleted) and reported, and
//! the caller starts from a fresh state.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content was not valid; the file was moved to `moved_to`.
    #[error("{path} is corrupt ({message}); moved aside to {moved_to}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What the parser said.
        message: String,
        /// Where the bad file now is.
        moved_to: PathBuf,
    },
}

/// Prefix of the temporary files of atomic writes.
const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` atomically, creating the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes to `path` atomically what `write` produces, streamed through a small buffer into the
/// temporary file (no copy of the whole content in memory). When `write` fails, the temporary file
/// is removed and `path` keeps its old content.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    let mut out = std::io::BufWriter::new(tmp);
    write(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes temporary files that a writer killed mid-write left in `dir` (they never hold state:
/// the state file is only ever replaced by a completed one). Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Loads a JSON state file: `Ok(None)` when it does not exist; a corrupt file is moved aside.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let moved_to = quarantine_path(path, Utc::now());
            std::fs::rename(path, &moved_to).map_err(|source| StateError::Io {
                path: path.to_owned(),
                source,
            })?;
            Err(StateError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
                moved_to,
            })
        }
    }
}

/// Saves a JSON state file atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    write_atomic_with(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|source| StateError::Io {
        path: path.to_owned(),
        source,
    })
}

fn quarantine_path(path: &Path, now: DateTime<Utc>) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        "{name}.corrupt-{}",
        now.format("%Y%m%dT%H%M%S%.6fZ")
    ))
}

/// Where the previous check's journal window ended, so the next check only reports newer errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalState {
    /// The unit the window belongs to.
    pub unit: String,
    /// End of the window already reported.
    pub checked_until: DateTime<Utc>,
}

impl JournalState {
    /// The file name under the state directory.
    pub const FILE: &'static str = "journal_state.json";

    /// The end of the last window for `unit`, if one is recorded.
    pub fn load(state_dir: &Path, unit: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let state: Option<JournalState> = load_json(&state_dir.join(Self::FILE))?;
        Ok(state.filter(|s| s.unit == unit).map(|s| s.checked_until))
    }

    /// Records the end of the window just reported.
    pub fn save(
        state_dir: &Path,
        unit: &str,
        checked_until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        save_json(
            &state_dir.join(Self::FILE),
            &JournalState {
                unit: unit.to_owned(),
                checked_until,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unit_filter() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::from_timestamp(1_764_544_514, 0).unwrap();
        assert_eq!(JournalState::load(dir.path(), "a.service").unwrap(), None);
        JournalState::save(dir.path(), "a.service", t).unwrap();
        assert_eq!(
            JournalState::load(dir.path(), "a.service").unwrap(),
            Some(t)
        );
        assert_eq!(JournalState::load(dir.path(), "b.service").unwrap(), None);
        // no temporary files are left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(JournalState::FILE)]);
    }

    #[test]
    fn corrupt_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JournalState::FILE);
        std::fs::write(&path, b"{\"unit\": tru").unwrap();
        let err = JournalState::load(dir.path(), "a.service").unwrap_err();
        let StateError::Corrupt { moved_to, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(std::fs::read(&moved_to).unwrap(), b"{\"unit\": tru");
        assert!(!path.exists());
        assert_eq!(JournalState::load(dir.path(), "a.service").unwrap(), None);
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
    }
}
