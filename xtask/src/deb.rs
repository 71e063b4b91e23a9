//! The Debian packages `cargo xtask dist` builds beside the portable binaries:
//! `cryptobot-agent_<version>_amd64.deb` (the agent, its unit, system user, restart privilege and
//! `/etc/cryptobot/agent.toml` as a conffile, with maintainer scripts that behave like
//! `dh_installsystemd`'s) and `cryptoctl_<version>_amd64.deb` (the CLI with its bash, zsh and fish
//! completions and a man page per subcommand). A package is staged in a directory with the modes
//! it installs with and built by `dpkg-deb --root-owner-group`, so no file belongs to the build
//! machine's users; it is written under a temporary name and renamed into place.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::tools::run;

/// Where a file of a package comes from.
#[derive(Debug)]
pub enum Source {
    /// A file on the build machine.
    File(PathBuf),
    /// Text made here.
    Text(String),
}

/// One file of a package: where it comes from, where it goes (without the leading `/`), its mode,
/// and whether to compress it (man pages and the changelog: `gzip -9n`, `.gz` appended).
#[derive(Debug)]
pub struct Entry {
    /// The contents.
    pub source: Source,
    /// The installed path, relative to `/`.
    pub path: String,
    /// The installed mode.
    pub mode: u32,
    /// Installed gzip-compressed.
    pub gzip: bool,
}

impl Entry {
    /// A regular file, 0644.
    pub fn file(source: impl AsRef<Path>, path: &str) -> Entry {
        Entry {
            source: Source::File(source.as_ref().to_path_buf()),
            path: path.to_owned(),
            mode: 0o644,
            gzip: false,
        }
    }

    /// An executable, 0755.
    pub fn program(source: impl AsRef<Path>, path: &str) -> Entry {
        Entry {
            mode: 0o755,
            ..Entry::file(source, path)
        }
    }

    /// Compressed when installed.
    pub fn gzipped(mut self) -> Entry {
        self.gzip = true;
        self
    }
}

/// A binary package.
#[derive(Debug)]
pub struct Package {
    /// `Package:`.
    pub name: &'static str,
    /// `Version:`.
    pub version: String,
    /// `Depends:`.
    pub depends: &'static str,
    /// `Recommends:`, if any.
    pub recommends: Option<&'static str>,
    /// `Description:`: the synopsis, then the extended description's lines.
    pub description: (&'static str, &'static str),
    /// The files.
    pub entries: Vec<Entry>,
    /// Installed paths that are conffiles.
    pub conffiles: Vec<&'static str>,
    /// Maintainer scripts (`postinst`, `prerm`, `postrm`) and their text.
    pub scripts: Vec<(&'static str, String)>,
}

/// The architecture of the packages (that of the portable binaries).
pub const ARCH: &str = "amd64";

impl Package {
    /// The package's file name, `name_version_amd64.deb`.
    pub fn file_name(&self) -> String {
        format!("{}_{}_{ARCH}.deb", self.name, self.version)
    }

    /// Stages the package under `work` and builds it into `out_dir`; returns its path.
    pub fn build(&self, work: &Path, out_dir: &Path) -> Result<PathBuf> {
        let stage = work.join(self.name);
        if stage.exists() {
            fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
        }
        let mut installed_bytes = 0u64;
        let mut sums = String::new();
        for entry in &self.entries {
            let rel = if entry.gzip {
                format!("{}.gz", entry.path)
            } else {
                entry.path.clone()
            };
            ensure!(!rel.starts_with('/'), "{rel}: paths are relative to /");
            let dest = stage.join(&rel);
            make_dirs(&stage, dest.parent().expect("a file has a parent"))?;
            match &entry.source {
                Source::File(p) => {
                    fs::copy(p, &dest).with_context(|| format!("copying {}", p.display()))?;
                }
                Source::Text(t) => fs::write(&dest, t)?,
            }
            if entry.gzip {
                gzip_in_place(&dest)?;
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(entry.mode))?;
            installed_bytes += fs::metadata(&dest)?.len();
            if !self.conffiles.contains(&format!("/{rel}").as_str()) {
                sums.push_str(&format!("{}  {rel}\n", md5_hex(&dest)?));
            }
        }
        let control_dir = stage.join("DEBIAN");
        make_dirs(&stage, &control_dir)?;
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {ARCH}\nMaintainer: cryptobot-health maintainers <maintainers@cryptobot-health.invalid>\nInstalled-Size: {}\nDepends: {}\n",
            self.name,
            self.version,
            installed_bytes.div_ceil(1024),
            self.depends,
        );
        if let Some(r) = self.recommends {
            control.push_str(&format!("Recommends: {r}\n"));
        }
        control.push_str(&format!(
            "Section: admin\nPriority: optional\nHomepage: https://github.com/cryptobot-health/cryptobot-health\nDescription: {}\n",
            self.description.0
        ));
        for line in self.description.1.lines() {
            control.push_str(&format!(" {line}\n"));
        }
        write_mode(&control_dir.join("control"), &control, 0o644)?;
        write_mode(&control_dir.join("md5sums"), &sums, 0o644)?;
        if !self.conffiles.is_empty() {
            let list: String = self.conffiles.iter().map(|c| format!("{c}\n")).collect();
            write_mode(&control_dir.join("conffiles"), &list, 0o644)?;
        }
        for (name, text) in &self.scripts {
            write_mode(&control_dir.join(name), text, 0o755)?;
        }

        fs::create_dir_all(out_dir)?;
        let out = out_dir.join(self.file_name());
        let tmp = out_dir.join(format!(".{}.{}.tmp", self.file_name(), std::process::id()));
        let built = run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&tmp))
        .and_then(|()| {
            fs::rename(&tmp, &out).with_context(|| format!("renaming into {}", out.display()))
        });
        if built.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        built?;
        Ok(out)
    }
}

/// Creates `dir` and its parents below `stage`, each 0755.
fn make_dirs(stage: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut d = dir;
    while d.starts_with(stage) {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    Ok(())
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Replaces the staged file at `path` by its `gzip -9n` (no name, no time stamp: reproducible).
fn gzip_in_place(path: &Path) -> Result<()> {
    let out = Command::new("gzip")
        .args(["-9n", "--stdout"])
        .arg(path)
        .output()
        .context("cannot run gzip")?;
    if !out.status.success() {
        bail!(
            "gzip {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::write(path, out.stdout)?;
    Ok(())
}

fn md5_hex(path: &Path) -> Result<String> {
    let out = Command::new("md5sum")
        .arg("--")
        .arg(path)
        .output()
        .context("cannot run md5sum")?;
    ensure!(out.status.success(), "md5sum {}", path.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}
