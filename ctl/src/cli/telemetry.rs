//! The command-line options of fleet health at scale: where `health` takes each VM's health from
//! (`--source agent|telemetry`, the telemetry store, `--stale-after`, `--drill`) and where `vms`
//! takes its list from (`--inventory arm|resource-graph`), with the Resource Graph scope
//! (`--management-group`). Values are validated by `validate::telemetry`.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::validate::telemetry::{AppId, ManagementGroupName, QueryEndpoint, WorkspaceId};

/// Where `health` takes each VM's health from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HealthSource {
    /// Ask each VM's agent (one run-command or ssh round trip per VM)
    Agent,
    /// Resource Graph for the VMs, the agents' Application Insights telemetry for their health
    /// (two kinds of request for the whole fleet; nothing runs on a VM unless --drill)
    Telemetry,
}

/// Where `vms` takes its list from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Inventory {
    /// Resource Manager's VM lists, then one instance view per VM for the power state
    Arm,
    /// One Azure Resource Graph query (power state included), across subscriptions
    ResourceGraph,
}

/// The Resource Graph scope beyond `--subscription`.
#[derive(Debug, Clone, Default, Args)]
pub struct GraphScopeArgs {
    /// Query the subscriptions under this management group instead (repeatable; Resource Graph
    /// only)
    #[arg(long = "management-group", value_name = "NAME")]
    pub management_groups: Vec<ManagementGroupName>,
}

/// Options of `health` for the telemetry source.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Where each VM's health comes from
    #[arg(long, value_enum, default_value_t = HealthSource::Agent)]
    pub source: HealthSource,
    /// Application ID of the Application Insights resource the agents send to (--source telemetry)
    #[arg(long, value_name = "APP_ID", env = "CRYPTOCTL_APP_INSIGHTS")]
    pub app_insights: Option<AppId>,
    /// Or the Workspace ID of its Log Analytics workspace (workspace-based resources)
    #[arg(long, value_name = "WORKSPACE_ID", env = "CRYPTOCTL_WORKSPACE")]
    pub workspace: Option<WorkspaceId>,
    /// A running VM whose newest telemetry is older than this is UNKNOWN (silent)
    #[arg(long, default_value = "10m", value_parser = super::parse_positive_duration)]
    pub stale_after: Duration,
    /// Ask the agent (run-command or ssh) on the VMs that are not HEALTHY or are silent
    #[arg(long)]
    pub drill: bool,
    /// Base URL of the query API [default: https://api.applicationinsights.io, or
    /// https://api.loganalytics.io with --workspace]
    #[arg(
        long,
        env = "CRYPTOCTL_QUERY_ENDPOINT",
        value_name = "URL",
        hide = true
    )]
    pub query_endpoint: Option<QueryEndpoint>,
    #[command(flatten)]
    pub scope: GraphScopeArgs,
}
