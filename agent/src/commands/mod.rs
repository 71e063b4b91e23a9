//! One file per subcommand; [`run`] is the dispatch.
//!
//! The local commands (`status`, `restart`, `pause`, `resume`, `reset-backoff`) talk to the running
//! agent over its unix socket; their errors are printed here and become exit codes (3 when the
//! agent cannot be reached, 1 when it refused, 70 otherwise).

mod alert;
mod check;
mod config;
mod pause;
mod reset_backoff;
mod restart;
mod resume;
mod run;
mod status;

use std::{path::PathBuf, process::ExitCode};

use crate::{
    cli::{AlertCommand, Cli, Command, ConfigCommand},
    client::ClientError,
    config::Config,
};

/// Runs the command line's command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (path, explicit) = cli.config_path();
    let socket = || -> anyhow::Result<PathBuf> {
        Ok(match &cli.socket {
            Some(s) => s.clone(),
            None => Config::load(&path, explicit)?.grpc.socket,
        })
    };
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
        Some(Command::Status(args)) => Ok(local(status::run(&socket()?, args).await)),
        Some(Command::Restart(args)) => Ok(local(restart::run(&socket()?, args).await)),
        Some(Command::Pause(args)) => Ok(local(pause::run(&socket()?, args).await)),
        Some(Command::Resume) => Ok(local(resume::run(&socket()?).await)),
        Some(Command::ResetBackoff) => Ok(local(reset_backoff::run(&socket()?).await)),
        None => check::run(&Config::load(&path, explicit)?, &cli.legacy).await,
    }
}

/// A local command's result as an exit code, its error printed.
fn local(result: Result<ExitCode, ClientError>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(e.exit_code())
    })
}
