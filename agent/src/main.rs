//! Entry point: parse the command line, start logging, run the command, map the result to an exit
//! code (0-3 for health statuses, 64 usage, 78 configuration, 70 anything else).

use std::{io::Write, process::ExitCode};

use clap::Parser;
use cryptobot_agent::{
    cli::{Cli, EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE},
    commands,
    config::ConfigError,
    logging,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let daemon =
        matches!(cli.command, Some(cryptobot_agent::cli::Command::Run)) || cli.legacy.daemon;
    logging::init(
        cli.log_level.as_deref(),
        if daemon { "info" } else { "warn" },
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // stderr may be gone (journald stopped): never panic on the way out
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}
