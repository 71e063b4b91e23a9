//! `maintenance.json`: a persisted pause of restarts (and alerts), until a deadline or `resume`.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{StateError, load_json, save_json};

/// The file name under the state directory.
pub const FILE: &str = "maintenance.json";

/// A pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When it began.
    pub since: DateTime<Utc>,
    /// When it ends by itself; `None` until resumed.
    pub until: Option<DateTime<Utc>>,
}

impl Pause {
    /// Still in force at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// Loads the pause, if any (a corrupt file is moved aside and reported).
    pub fn load(dir: &Path) -> (Option<Pause>, Option<StateError>) {
        match load_json::<Pause>(&dir.join(FILE)) {
            Ok(p) => (p, None),
            Err(e) => (None, Some(e)),
        }
    }

    /// Records the pause atomically, or removes the file when `pause` is `None`.
    pub fn store(dir: &Path, pause: Option<&Pause>) -> Result<(), StateError> {
        let path = dir.join(FILE);
        match pause {
            Some(p) => save_json(&path, p),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StateError::Io { path, source: e })
                }
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let p = Pause {
            since: t(0),
            until: Some(t(3600)),
        };
        Pause::store(dir.path(), Some(&p)).unwrap();
        assert_eq!(Pause::load(dir.path()).0, Some(p.clone()));
        assert!(p.active_at(t(3599)) && !p.active_at(t(3600)));
        assert!(
            Pause {
                since: t(0),
                until: None
            }
            .active_at(t(1 << 40))
        );
        Pause::store(dir.path(), None).unwrap();
        assert_eq!(Pause::load(dir.path()).0, None);
        Pause::store(dir.path(), None).unwrap();
    }
}
