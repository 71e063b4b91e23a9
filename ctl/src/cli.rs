//! Command line of `cryptoctl`: global options (Azure access, transport, output, fan-out) and one
//! subcommand per operation. Values that can reach a VM are parsed into validated types here, so a
//! bad value is a usage error (exit 64) before anything is contacted.

pub mod alerts;
pub mod telemetry;

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::validate::{
    AgentPath, AgentUrl, CanaryProfile, CommitId, GitRef, Host, RepoUrl, ResourceGroupName,
    Sha256Hex, SshUser, TagFilter, VmName, storage::StorageTarget,
};

/// Exit code for usage errors (`EX_USAGE`); 0-3 are health statuses.
pub const EXIT_USAGE: u8 = 64;
/// Exit code for any other failure (`EX_SOFTWARE`).
pub const EXIT_FAILURE: u8 = 70;
/// Exit code after Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Default Azure Resource Manager endpoint.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// Where the agent is installed on a VM unless `--agent-path` says otherwise.
pub const DEFAULT_AGENT_PATH: &str = "/usr/local/bin/cryptobot-agent";

/// Operator CLI for the cryptobot fleet: health, restart, pause, resume and logs of the
/// `faucet_worker` service on Azure VMs, through the `cryptobot-agent` on each VM.
#[derive(Debug, Parser)]
#[command(name = "cryptoctl", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst VM); 64 usage error, 70 failure, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Azure subscription id [default: AZURE_SUBSCRIPTION_ID, else the Azure CLI's default];
    /// repeatable with vms, health, restart, pause, resume and logs, whose VMs then come from one
    /// Resource Graph query
    #[arg(long, global = true, env = "AZURE_SUBSCRIPTION_ID", value_name = "ID")]
    pub subscription: Vec<String>,

    /// Azure Resource Manager endpoint (always HTTPS)
    #[arg(long, global = true, env = "CRYPTOCTL_ARM_ENDPOINT", default_value = DEFAULT_ARM_ENDPOINT, value_name = "URL")]
    pub arm_endpoint: String,

    /// How to reach the VMs: Azure run-command (default) or ssh
    #[arg(long, global = true, value_enum, default_value_t = TransportKind::RunCommand)]
    pub transport: TransportKind,

    /// ssh user
    #[arg(long, global = true, default_value = "azureuser", value_name = "USER")]
    pub ssh_user: SshUser,

    /// ssh private key
    #[arg(long, global = true, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,

    /// ssh to this address instead of the VM's public IP (only with a single VM)
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<Host>,

    /// The ssh client command, split on whitespace, e.g. `ssh -F ~/.ssh/fleet_config`
    #[arg(
        long,
        global = true,
        env = "CRYPTOCTL_SSH_COMMAND",
        default_value = "ssh",
        value_name = "COMMAND"
    )]
    pub ssh_command: String,

    /// Path of cryptobot-agent on the VMs (else it is looked up in the VM's PATH)
    #[arg(long, global = true, env = "CRYPTOCTL_AGENT_PATH", default_value = DEFAULT_AGENT_PATH, value_name = "PATH")]
    pub agent_path: AgentPath,

    /// Output format
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// VMs handled at once (lowered automatically when Azure's request budget runs low)
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// Time allowed per VM, e.g. `90s` or `5m`
    #[arg(long, global = true, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Interval between polls of a run-command when Azure does not send Retry-After
    #[arg(long, global = true, env = "CRYPTOCTL_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration, hide = true)]
    pub poll_interval: Duration,

    /// Log filter for diagnostics on stderr, e.g. `debug` [default: warn, or RUST_LOG]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// How commands reach the VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// Azure's run-command API (no network path to the VM needed)
    RunCommand,
    /// The system ssh client to the VM's public IP (or --host)
    Ssh,
}

impl TransportKind {
    /// The name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::RunCommand => "run-command",
            TransportKind::Ssh => "ssh",
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for people
    Table,
    /// A JSON array, one object per VM (see the README for the schema)
    Json,
}

/// Which VMs a command acts on.
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Resource group (repeatable)
    #[arg(short = 'g', long = "resource-group", value_name = "NAME")]
    pub resource_groups: Vec<ResourceGroupName>,

    /// VM name (repeatable)
    #[arg(short = 'n', long = "vm-name", value_name = "NAME")]
    pub vm_names: Vec<VmName>,

    /// Only VMs with this tag (repeatable; all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<TagFilter>,

    /// Every VM of the subscription (of every --subscription given)
    #[arg(long)]
    pub all: bool,
}

impl Selection {
    /// True when nothing selects any VM.
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.resource_groups.is_empty()
            && self.vm_names.is_empty()
            && self.tags.is_empty()
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List VMs: name, resource group, location, size, power state.
    Vms(VmsArgs),
    /// Health of each VM's worker, through its agent; exit code = the worst status.
    Health(HealthArgs),
    /// Restart the worker through the agent (systemctl restart when no agent is installed).
    Restart(RestartArgs),
    /// Pause the agent's restarts and alerts.
    Pause(PauseArgs),
    /// End a pause.
    Resume(ResumeArgs),
    /// A bounded tail of the worker's (or the agent's) journal.
    Logs(LogsArgs),
    /// Deploy the bot and the agent, gated on the worker's health (rolls back on failure).
    Deploy(DeployArgs),
    /// Roll the bot back to a commit (default: the one before the last deploy), health-gated.
    Rollback(RollbackArgs),
    /// Azure Monitor alerting: an action group and log alert rules over the agents' telemetry.
    Alerts(alerts::AlertsArgs),
}

/// Where the bot lives on the VMs, and the health gate (shared by `deploy` and `rollback`).
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// The user the bot runs as and owns its files (never root)
    #[arg(long, default_value = "azureuser", value_name = "USER")]
    pub app_user: SshUser,
    /// The bot's checkout [default: /home/USER/Repositories/cryptobot]
    #[arg(long, value_name = "PATH")]
    pub app_dir: Option<AgentPath>,
    /// How long the health gate waits for a fresh heartbeat, e.g. `90s`
    #[arg(long, default_value = "5m", value_parser = parse_positive_duration)]
    pub gate_timeout: Duration,
    /// Print the plan and the exact script with its arguments; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// VMs handled at once, in resource group then name order; after a failure no further VM is
    /// started (default 1: one at a time, stopping at the first failure)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_parallel: u16,
}

/// Options of `deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub app: AppArgs,
    /// Where to clone the bot from when the VM has no checkout
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<RepoUrl>,
    /// Branch, tag or commit to deploy
    #[arg(long = "ref", default_value = "master", value_name = "REF")]
    pub git_ref: GitRef,
    /// Set CANARY_PROFILE (and CANARY_ONLY=true) in the bot's .env
    #[arg(long, value_name = "PROFILE", conflicts_with = "canary_reset")]
    pub canary_profile: Option<CanaryProfile>,
    /// Remove CANARY_PROFILE and CANARY_ONLY from the bot's .env
    #[arg(long)]
    pub canary_reset: bool,
    /// Add a WatchdogSec drop-in to the worker unit (only for a bot that pings the watchdog)
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub worker_watchdog: Option<Duration>,
    /// The agent binary to install over ssh [default: target/dist/cryptobot-agent in the current
    /// directory (built by `cargo xtask dist`), else cryptobot-agent next to cryptoctl]
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Option<PathBuf>,
    /// URL the VM downloads the agent from (run-command cannot carry the binary)
    #[arg(long, value_name = "URL")]
    pub agent_url: Option<AgentUrl>,
    /// SHA-256 of the binary at --agent-url [default: of --agent-binary]
    #[arg(long, value_name = "HEX")]
    pub agent_sha256: Option<Sha256Hex>,
    /// Install the agent from its Debian package (dpkg -i on the VM; the previous package is kept
    /// for `rollback --agent`). Over ssh it is copied; over run-command use --agent-storage (or
    /// --agent-url serving this file)
    #[arg(long, value_name = "FILE", conflicts_with = "agent_binary")]
    pub agent_deb: Option<PathBuf>,
    /// Upload the agent (--agent-deb, --agent-binary or the default binary) to this Azure Blob
    /// Storage container with your Entra token; each VM downloads it with a short-lived read-only
    /// SAS and checks its SHA-256 (needs Storage Blob Data Contributor; no --agent-url needed)
    #[arg(long, value_name = "ACCOUNT/CONTAINER", conflicts_with = "agent_url")]
    pub agent_storage: Option<StorageTarget>,
    /// The agent's configuration to install [default: deploy/agent.toml]
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// Replace a locally edited /etc/cryptobot/agent.toml
    #[arg(long)]
    pub force_config: bool,
    /// Leave the bot alone
    #[arg(long)]
    pub skip_app: bool,
    /// Leave the agent alone
    #[arg(long)]
    pub skip_agent: bool,
}

/// Options of `rollback`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub app: AppArgs,
    /// The commit to go back to [default: the one before the last deploy, from the VM's record]
    #[arg(long, value_name = "SHA")]
    pub commit: Option<CommitId>,
    /// Also put the previous agent binary back (the current one becomes the new `.previous`, so
    /// running it again undoes it)
    #[arg(long)]
    pub agent: bool,
    /// Leave the bot alone: with --agent, roll back only the agent
    #[arg(long, requires = "agent", conflicts_with = "commit")]
    pub skip_app: bool,
}

/// Options of `vms`.
#[derive(Debug, Clone, Args)]
pub struct VmsArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Where the list comes from
    #[arg(long, value_enum, default_value_t = telemetry::Inventory::ResourceGraph)]
    pub inventory: telemetry::Inventory,
    #[command(flatten)]
    pub scope: telemetry::GraphScopeArgs,
}

impl Cli {
    /// Whether the command's VMs come from Resource Graph over `--management-group`s, where no
    /// subscription is needed.
    pub fn scoped_by_management_groups(&self) -> bool {
        match &self.command {
            Command::Health(h) => {
                h.telemetry.source == telemetry::HealthSource::Telemetry
                    && !h.telemetry.scope.management_groups.is_empty()
            }
            Command::Vms(v) => {
                v.inventory == telemetry::Inventory::ResourceGraph
                    && !v.scope.management_groups.is_empty()
            }
            _ => false,
        }
    }

    /// Several `--subscription`s need the VMs from Resource Graph, which queries them all at once:
    /// `vms`, `health`, `restart`, `pause`, `resume` and `logs` take them from there; `vms
    /// --inventory arm`, `deploy`, `rollback` and `alerts` work in one subscription.
    pub fn check_subscriptions(&self) -> Result<(), String> {
        let single = match &self.command {
            Command::Vms(v) => {
                (v.inventory == telemetry::Inventory::Arm).then_some("vms --inventory arm")
            }
            Command::Deploy(_) => Some("deploy"),
            Command::Rollback(_) => Some("rollback"),
            Command::Alerts(_) => Some("alerts"),
            Command::Health(_)
            | Command::Restart(_)
            | Command::Pause(_)
            | Command::Resume(_)
            | Command::Logs(_) => None,
        };
        match single {
            Some(command) if self.global.subscription.len() > 1 => Err(format!(
                "`{command}` works in one subscription: give one --subscription (several go with \
                 vms, health, restart, pause, resume and logs)"
            )),
            _ => Ok(()),
        }
    }
}

/// Options of `health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Restart the worker on VMs that are CRITICAL with the service down
    #[arg(long)]
    pub restart: bool,
    /// Have each VM's agent send its alerts (cryptobot-agent check --alert)
    #[arg(long)]
    pub alert: bool,
    /// Also compare each VM's checkout with the tip of its deployed ref on the git remote, as the
    /// app user (off by default: it makes every VM contact the remote)
    #[arg(long)]
    pub check_updates: bool,
    /// The user the bot runs as, for --check-updates
    #[arg(long, default_value = "azureuser", value_name = "USER")]
    pub app_user: SshUser,
    /// The bot's checkout, for --check-updates [default: /home/USER/Repositories/cryptobot]
    #[arg(long, value_name = "PATH")]
    pub app_dir: Option<AgentPath>,
    #[command(flatten)]
    pub telemetry: telemetry::TelemetryArgs,
}

/// Options of `restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Restart even if the agent's restart backoff says to wait
    #[arg(long)]
    pub force: bool,
}

/// Options of `pause`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// How long, e.g. `30m` or `1h` [default: until `resume`]
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
}

/// Options of `resume`.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub selection: Selection,
}

/// Which journal `logs` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogUnit {
    /// faucet_worker.service
    Worker,
    /// cryptobot-agent.service
    Agent,
}

impl LogUnit {
    /// The word the remote script maps to a unit.
    pub fn as_str(self) -> &'static str {
        match self {
            LogUnit::Worker => "worker",
            LogUnit::Agent => "agent",
        }
    }
}

/// journald priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Priority {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Priority {
    /// The syslog number (0 emerg .. 7 debug).
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// Options of `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Whose journal
    #[arg(long, value_enum, default_value_t = LogUnit::Worker)]
    pub unit: LogUnit,
    /// Only entries newer than this, e.g. `1h`
    #[arg(long, value_parser = parse_positive_duration)]
    pub since: Option<Duration>,
    /// At most this many lines per VM
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub lines: u32,
    /// Only entries of this priority or more severe
    #[arg(long, value_enum)]
    pub priority: Option<Priority>,
}

/// A duration like `90s`, `5m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
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
    fn repeatable_selection_and_defaults() {
        let cli = Cli::try_parse_from([
            "cryptoctl",
            "health",
            "-g",
            "APPSERVRG",
            "-g",
            "BOTS",
            "-n",
            "DevNode01",
            "--tag",
            "role=bot",
        ])
        .unwrap();
        let Command::Health(h) = cli.command else {
            panic!()
        };
        assert_eq!(h.selection.resource_groups.len(), 2);
        assert_eq!(h.selection.vm_names[0].as_str(), "DevNode01");
        assert_eq!(cli.global.concurrency, 16);
        assert_eq!(cli.global.transport, TransportKind::RunCommand);
        assert_eq!(cli.global.ssh_user.as_str(), "azureuser");
    }

    #[test]
    fn hostile_values_are_usage_errors() {
        for args in [
            vec!["cryptoctl", "health", "-g", "x$(touch /tmp/pwned)"],
            vec!["cryptoctl", "health", "-n", "x$(touch /tmp/pwned)"],
            vec!["cryptoctl", "health", "-n", "vm", "--ssh-user", "root;id"],
            vec![
                "cryptoctl",
                "health",
                "-n",
                "vm",
                "--host",
                "-oProxyCommand=id",
            ],
            vec![
                "cryptoctl",
                "health",
                "-n",
                "vm",
                "--agent-path",
                "/x;touch /tmp/pwned",
            ],
            vec!["cryptoctl", "logs", "-n", "vm", "--since", "$(id)"],
            vec!["cryptoctl", "logs", "-n", "vm", "--priority", "err;id"],
        ] {
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert!(e.use_stderr(), "{args:?}");
        }
    }
}
