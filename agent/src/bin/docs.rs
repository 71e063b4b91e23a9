//! `cryptobot-agent-docs DIR`: writes `DIR/man/cryptobot-agent.1`, the man page the agent's
//! package installs, generated from the same clap definitions as the command line (its
//! subcommands are listed in it). Run by `cargo xtask dist`.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .context("usage: cryptobot-agent-docs DIR")?;
    let man = Path::new(&dir).join("man");
    fs::create_dir_all(&man)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cryptobot_agent::cli::Cli::command())
        .render(&mut page)
        .context("man page")?;
    fs::write(man.join("cryptobot-agent.1"), page)?;
    Ok(())
}
