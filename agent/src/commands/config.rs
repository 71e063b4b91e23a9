//! `cryptobot-agent config check [PATH]`: validate a configuration file, print the effective
//! configuration (defaults filled in) on success.

use std::{path::Path, process::ExitCode};

use crate::{config::Config, restart::helper};

pub(super) fn check(path: &Path, explicit: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path, explicit)?;
    if path.exists() {
        eprintln!("{}: valid", path.display());
    } else {
        eprintln!("{} does not exist: the defaults apply", path.display());
    }
    if config.restart.enabled
        && let Some(why) = helper::helper_mismatch(&config.unit, &config.state_dir)
    {
        // valid, and fine where polkit grants the restart (or the agent runs as root)
        eprintln!("note: where polkit is older than 106 (Ubuntu 22.04, Debian 11), {why}");
    }
    print!("{config}");
    Ok(ExitCode::SUCCESS)
}
