//! Command-line interface of `cryptobot-agent`.
//!
//! The original monitor's flags keep working without a subcommand: `--json` and `--check` run a
//! one-shot check (`--check` does nothing else, as before).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

/// Exit code for usage errors (`EX_USAGE`); 0-3 are health statuses.
pub const EXIT_USAGE: u8 = 64;
/// Exit code for configuration errors (`EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code for any other failure (`EX_SOFTWARE`).
pub const EXIT_FAILURE: u8 = 70;

/// Health agent for the faucet_worker service.
#[derive(Debug, Parser)]
#[command(name = "cryptobot-agent", version, about, long_about = None)]
#[command(
    after_help = "Exit codes of check: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; 64 usage error, 78 configuration error."
)]
pub struct Cli {
    /// Configuration file [default: /etc/cryptobot/agent.toml, if it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log filter, e.g. `info` or `cryptobot_agent=debug` [default: warn, or RUST_LOG]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Legacy flags of the original monitor, used when no subcommand is given.
    #[command(flatten)]
    pub legacy: CheckArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every check once, print the report and exit with its status.
    Check(CheckArgs),
    /// Run the agent: follow the worker, check on an interval, restart with backoff, serve HTTP
    /// and gRPC (systemd Type=notify with watchdog).
    Run,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Alerting tools.
    #[command(subcommand)]
    Alert(AlertCommand),
}

/// `alert` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test notification (and one telemetry item) through every configured sink and say
    /// per sink whether it was delivered; exits non-zero if any failed.
    Test,
}

/// Options of `check`.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Accepted for compatibility; a single check is the default anyway.
    #[arg(long)]
    pub check: bool,
    /// Legacy: run the daemon (same as `cryptobot-agent run`).
    #[arg(long, hide = true)]
    pub daemon: bool,
    /// Restart the worker if it is down (or hung) and its backoff allows (the daemon always does).
    #[arg(long)]
    pub restart: bool,
    /// Send notifications and telemetry through the configured sinks (with the daemon's dedup and
    /// reminder state), waiting a bounded time for delivery.
    #[arg(long)]
    pub alert: bool,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and print the effective configuration.
    Check {
        /// The file to validate [default: --config, or /etc/cryptobot/agent.toml]
        path: Option<PathBuf>,
    },
}

impl Cli {
    /// The configuration file to read and whether the user named it.
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn legacy_flags_parse_without_a_subcommand() {
        let cli = Cli::try_parse_from(["cryptobot-agent", "--check", "--json"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.legacy.json && cli.legacy.check);
    }
}
