//! Which glibc a binary needs: the highest `GLIBC_x.y[.z]` among its version needs (see
//! [`crate::elf`]), and the check that it is no newer than the oldest glibc the agent supports.

use std::{fmt, path::Path, str::FromStr};

use anyhow::{Result, bail};

use crate::elf::{self, VersionNeed};

/// The oldest glibc the dist agent runs on (Debian 10, RHEL 8). Users' VMs have 2.35 or newer;
/// the margin keeps Debian 11 (2.31), the oldest system the agent is tried on, well inside.
pub const MAX_GLIBC: GlibcVersion = GlibcVersion {
    major: 2,
    minor: 28,
    patch: 0,
};

/// A glibc release, e.g. 2.28 or 2.2.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl FromStr for GlibcVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a glibc version: {s:?}");
        let mut parts = s.split('.').map(|p| p.parse::<u32>().map_err(|_| bad()));
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(GlibcVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.patch != 0 {
            write!(f, ".{}", self.patch)?;
        }
        Ok(())
    }
}

/// What a binary needs from glibc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlibcNeeds {
    /// The highest release version, `None` when it needs none (e.g. a static binary).
    pub highest: Option<GlibcVersion>,
    /// `GLIBC_` versions that name no release (`GLIBC_PRIVATE`, `GLIBC_ABI_DT_RELR`, …): each
    /// ties the binary to the glibc it was linked against.
    pub other: Vec<String>,
}

impl GlibcNeeds {
    /// Sorts a binary's version needs into glibc's.
    pub fn of(needs: &[VersionNeed]) -> GlibcNeeds {
        let mut out = GlibcNeeds::default();
        for need in needs {
            let Some(tag) = need.version.strip_prefix("GLIBC_") else {
                continue; // another library's versions, e.g. libgcc_s's GCC_3.0
            };
            match tag.parse::<GlibcVersion>() {
                Ok(v) => out.highest = out.highest.max(Some(v)),
                Err(_) if !out.other.contains(&need.version) => {
                    out.other.push(need.version.clone());
                }
                Err(_) => {}
            }
        }
        out
    }

    /// What the ELF file at `path` needs from glibc.
    pub fn of_file(path: &Path) -> Result<GlibcNeeds> {
        Ok(GlibcNeeds::of(&elf::read_version_needs(path)?))
    }

    /// Fails unless every glibc the binary needs is `max` or older.
    pub fn check(&self, max: GlibcVersion) -> Result<()> {
        if let Some(v) = self.highest.filter(|v| *v > max) {
            bail!("needs glibc {v}, newer than {max}");
        }
        if !self.other.is_empty() {
            bail!(
                "needs {}, which glibc {max} does not offer",
                self.other.join(", ")
            );
        }
        Ok(())
    }

    /// A line for people: "glibc 2.28 (GLIBC_2.28)" or "no glibc version".
    pub fn describe(&self) -> String {
        let mut s = match self.highest {
            Some(v) => format!("glibc {v} (GLIBC_{v})"),
            None => "no glibc version".to_owned(),
        };
        if !self.other.is_empty() {
            s.push_str(&format!(" and {}", self.other.join(", ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(file: &str, version: &str) -> VersionNeed {
        VersionNeed {
            file: file.into(),
            version: version.into(),
        }
    }

    #[test]
    fn versions_parse_and_order_numerically() {
        let v = |s: &str| s.parse::<GlibcVersion>().unwrap();
        assert!(v("2.2.5") < v("2.3"));
        assert!(v("2.9") < v("2.28"));
        assert!(v("2.28") < v("2.34"));
        assert_eq!(v("2.28"), MAX_GLIBC);
        assert_eq!(v("2.3.4").to_string(), "2.3.4");
        assert_eq!(v("2.28").to_string(), "2.28");
        for bad in ["", "2", "2.", "PRIVATE", "ABI_DT_RELR", "2.28.1.1", "2.x"] {
            assert!(bad.parse::<GlibcVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_highest_glibc_version_decides() {
        let needs = GlibcNeeds::of(&[
            need("libc.so.6", "GLIBC_2.2.5"),
            need("libgcc_s.so.1", "GCC_4.2.0"),
            need("libc.so.6", "GLIBC_2.28"),
            need("libm.so.6", "GLIBC_2.27"),
        ]);
        assert_eq!(needs.highest, Some(MAX_GLIBC));
        assert!(needs.check(MAX_GLIBC).is_ok());
        assert_eq!(needs.describe(), "glibc 2.28 (GLIBC_2.28)");

        let newer = GlibcNeeds::of(&[
            need("libc.so.6", "GLIBC_2.34"),
            need("libc.so.6", "GLIBC_2.2.5"),
        ]);
        let err = newer.check(MAX_GLIBC).unwrap_err().to_string();
        assert_eq!(err, "needs glibc 2.34, newer than 2.28");
    }

    #[test]
    fn tags_that_name_no_release_fail_the_check() {
        let needs = GlibcNeeds::of(&[
            need("libc.so.6", "GLIBC_2.17"),
            need("libc.so.6", "GLIBC_ABI_DT_RELR"),
        ]);
        assert_eq!(needs.other, ["GLIBC_ABI_DT_RELR"]);
        assert!(needs.check(MAX_GLIBC).is_err());
        assert_eq!(GlibcNeeds::of(&[]).describe(), "no glibc version");
        assert!(GlibcNeeds::of(&[]).check(MAX_GLIBC).is_ok());
    }
}
