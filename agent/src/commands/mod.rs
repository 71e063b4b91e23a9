//! One file per subcommand; [`run`] is the dispatch.

mod alert;
mod check;
mod config;
mod run;

use std::process::ExitCode;

use crate::{
    cli::{AlertCommand, Cli, Command, ConfigCommand},
    config::Config,
};

/// Runs the command line's command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (path, explicit) = cli.config_path();
    match &cli.command {
        Some(Command::Config(ConfigCommand::Check { path: file })) => {
            let (file, explicit) = match file {
                Some(f) => (f.clone(), true),
                None => (path, explicit),
            };
            config::check(&file, explicit)
        }
        Some(Command::Check(args)) => check::run(&Config::load(&path, explicit)?, args).await,
        Some(Command::Run) => run::run(Config::load(&path, explicit)?).await,
        Some(Command::Alert(AlertCommand::Test)) => {
            alert::test(&Config::load(&path, explicit)?).await
        }
        None if cli.legacy.daemon => run::run(Config::load(&path, explicit)?).await,
        None => check::run(&Config::load(&path, explicit)?, &cli.legacy).await,
    }
}
