//! The tools of the portable build, installed when missing: Zig from PyPI's `ziglang` package
//! (its C toolchain links against any glibc version's stubs, whatever the build machine has) and
//! `cargo-zigbuild`, which drives cargo with Zig as the linker. Both are pinned, so that every
//! machine links the agent with the same toolchain.

use std::{
    ffi::OsString,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// The `ziglang` release from PyPI (Zig 0.16.0, a version cargo-zigbuild's own CI builds with).
pub const ZIGLANG_VERSION: &str = "0.16.0";
/// The `cargo-zigbuild` release from crates.io.
pub const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";

/// The cargo running this task (`cargo xtask` sets `CARGO`), or the one on `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// The Python that cargo-zigbuild runs Zig with (`python3 -m ziglang`): cargo-zigbuild's own
/// `CARGO_ZIGBUILD_PYTHON_PATH` when set, as it reads it too.
fn python() -> Command {
    let python =
        std::env::var_os("CARGO_ZIGBUILD_PYTHON_PATH").unwrap_or_else(|| OsString::from("python3"));
    Command::new(python)
}

/// Runs `cmd`, showing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

/// The trimmed stdout of `cmd` when it runs and exits 0.
fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs Zig with pip unless `python3 -m ziglang` is already [`ZIGLANG_VERSION`]. A Python
/// whose packages the system manages (PEP 668, e.g. Debian 12's) refuses plain `pip install`; the
/// install is then repeated with `--break-system-packages`, as the test setup does for its Python
/// packages.
pub fn ensure_zig() -> Result<()> {
    let installed = output_of(python().args(["-m", "ziglang", "version"]));
    if installed.as_deref() == Some(ZIGLANG_VERSION) {
        return Ok(());
    }
    eprintln!(
        "xtask: Zig {ZIGLANG_VERSION} is needed (found: {})",
        installed.as_deref().unwrap_or("none")
    );
    if output_of(python().args(["-m", "pip", "--version"])).is_none() {
        bail!(
            "pip is missing: install it (Debian: apt-get install python3-pip), or ziglang=={ZIGLANG_VERSION} by hand"
        );
    }
    let spec = format!("ziglang=={ZIGLANG_VERSION}");
    let pip = || {
        let mut c = python();
        c.args(["-m", "pip", "install", "--quiet", &spec]);
        c
    };
    let mut first = pip();
    eprintln!("$ {}", show(&first));
    let out = first.output().context("cannot run pip")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("externally-managed-environment") {
            bail!("pip install {spec} failed ({}):\n{err}", out.status);
        }
        eprintln!(
            "xtask: this Python's packages are managed by the system; retrying with --break-system-packages"
        );
        run(pip().arg("--break-system-packages"))?;
    }
    match output_of(python().args(["-m", "ziglang", "version"])) {
        Some(v) if v == ZIGLANG_VERSION => Ok(()),
        found => bail!(
            "after installing {spec}, `python3 -m ziglang version` says {}",
            found.as_deref().unwrap_or("nothing")
        ),
    }
}

/// Installs cargo-zigbuild with `cargo install --locked` unless cargo's list of installed
/// packages already has [`CARGO_ZIGBUILD_VERSION`].
pub fn ensure_cargo_zigbuild() -> Result<()> {
    let wanted = format!("cargo-zigbuild v{CARGO_ZIGBUILD_VERSION}:");
    let installed = output_of(cargo().args(["install", "--list"])).unwrap_or_default();
    if installed.lines().any(|l| l == wanted) {
        return Ok(());
    }
    let found = installed
        .lines()
        .find(|l| l.starts_with("cargo-zigbuild "))
        .map_or("none", |l| l.trim_end_matches(':'));
    eprintln!("xtask: cargo-zigbuild {CARGO_ZIGBUILD_VERSION} is needed (found: {found})");
    run(cargo().args([
        "install",
        "--locked",
        "cargo-zigbuild",
        "--version",
        CARGO_ZIGBUILD_VERSION,
    ]))
}
