//! `cryptobot-agent config check [PATH]`: validate a configuration file, print the effective
//! configuration (defaults filled in) on success.

use std::{path::Path, process::ExitCode};

use crate::config::Config;

pub(super) fn check(path: &Path, explicit: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path, explicit)?;
    if path.exists() {
        eprintln!("{}: valid", path.display());
    } else {
        eprintln!("{} does not exist: the defaults apply", path.display());
    }
    print!("{config}");
    Ok(ExitCode::SUCCESS)
}
