//! Command-line interface of `cryptobot-agent`.
//!
//! The original monitor's flags keep working without a subcommand: `--json` and `--check` run a
//! one-shot check (`--check` does nothing else, as before).

use std::{path::PathBuf, time::Duration};

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

    /// The running agent's unix socket, for status, restart, pause, resume and reset-backoff
    /// [default: grpc.socket of the configuration]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

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
    /// Show the running agent's report, restart backoff, pause and recent events; exit with the
    /// status like `check` (3 when the agent cannot be reached).
    Status(StatusArgs),
    /// Ask the running agent to restart the worker (exit 0 restarted, 1 deferred or refused, 2
    /// failed).
    Restart(RestartArgs),
    /// Suspend the running agent's restarts (and alerts), for a while or until `resume`.
    Pause(PauseArgs),
    /// End a pause.
    Resume,
    /// Forget the restart backoff: the next restart waits only the initial delay.
    ResetBackoff,
    /// Alerting tools.
    #[command(subcommand)]
    Alert(AlertCommand),
}

/// Options of `status`.
#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Print the agent's report as JSON, exactly as the agent made it.
    #[arg(long)]
    pub json: bool,
}

/// Options of `restart`.
#[derive(Debug, Clone, Default, Args)]
pub struct RestartArgs {
    /// Restart now even if the restart backoff says to wait.
    #[arg(long)]
    pub force: bool,
}

/// Options of `pause`.
#[derive(Debug, Clone, Default, Args)]
pub struct PauseArgs {
    /// How long, e.g. `30m` or `1h 30m` [default: until `resume`]
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("a pause must last longer than 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (examples: 30m, 1h, 1h 30m)")),
    }
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
    fn local_commands_parse() {
        let cli =
            Cli::try_parse_from(["cryptobot-agent", "pause", "--for", "1h", "--socket", "/s"])
                .unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        match cli.command {
            Some(Command::Pause(args)) => {
                assert_eq!(args.duration, Some(Duration::from_secs(3600)));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["soon", "0s"] {
            assert!(Cli::try_parse_from(["cryptobot-agent", "pause", "--for", bad]).is_err());
        }
        let cli = Cli::try_parse_from(["cryptobot-agent", "restart", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Restart(RestartArgs { force: true }))
        ));
        let cli = Cli::try_parse_from(["cryptobot-agent", "reset-backoff"]).unwrap();
        assert!(matches!(cli.command, Some(Command::ResetBackoff)));
    }

    #[test]
    fn legacy_flags_parse_without_a_subcommand() {
        let cli = Cli::try_parse_from(["cryptobot-agent", "--check", "--json"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.legacy.json && cli.legacy.check);
    }
}
