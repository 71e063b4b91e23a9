//! The command line of `cryptoctl alerts`: its subcommands and their options (see
//! `commands::alerts` for what they do). Values are validated while parsing, by `validate::alerts`.

use clap::{ArgGroup, Args, Subcommand};

use crate::validate::{
    ResourceGroupName,
    alerts::{EmailAddress, NamePrefix, Region, ScopeId, parse_app_insights, parse_workspace},
};

/// Options of `alerts`.
#[derive(Debug, Clone, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: AlertsAction,
}

/// What `alerts` does.
#[derive(Debug, Clone, Subcommand)]
pub enum AlertsAction {
    /// Create or update the action group and the log alert rules (unchanged ones are left alone).
    Deploy(DeployAlertsArgs),
    /// What exists, and where it differs from what `deploy` would write (exit 1 on any drift).
    Show(ShowAlertsArgs),
    /// Delete the action group and rules cryptoctl created (tag managed-by=cryptoctl), nothing else.
    Delete(DeleteAlertsArgs),
}

/// Where the rules look and where they are written.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["app_insights", "workspace"])))]
pub struct TargetArgs {
    /// The Application Insights resource the agents send to
    /// (/subscriptions/…/providers/Microsoft.Insights/components/NAME)
    #[arg(long, value_name = "RESOURCE_ID", value_parser = parse_app_insights)]
    pub app_insights: Option<ScopeId>,
    /// Or the Log Analytics workspace of a workspace-based Application Insights resource
    /// (/subscriptions/…/providers/Microsoft.OperationalInsights/workspaces/NAME)
    #[arg(long, value_name = "RESOURCE_ID", value_parser = parse_workspace)]
    pub workspace: Option<ScopeId>,
    /// Resource group of the action group and rules [default: the one of the resource above]
    #[arg(short = 'g', long = "resource-group", value_name = "NAME")]
    pub resource_group: Option<ResourceGroupName>,
    /// Prefix of every name
    #[arg(long, default_value = "cryptobot-", value_name = "PREFIX")]
    pub name_prefix: NamePrefix,
    /// Region of the rules [default: the region of the resource above, read from Azure]
    #[arg(long, value_name = "REGION")]
    pub location: Option<Region>,
}

impl TargetArgs {
    pub fn scope(&self) -> &ScopeId {
        self.app_insights
            .as_ref()
            .or(self.workspace.as_ref())
            .expect("clap requires one of them")
    }

    pub fn resource_group(&self) -> &str {
        self.resource_group
            .as_ref()
            .unwrap_or(&self.scope().resource_group)
            .as_str()
    }
}

/// The action group's receivers.
#[derive(Debug, Clone, Args)]
pub struct ReceiverArgs {
    /// E-mail receiver (repeatable)
    #[arg(long, value_name = "ADDRESS")]
    pub email: Vec<EmailAddress>,
    /// Webhook receiver, sent the common alert schema (repeatable)
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,
    /// Logic App receiver: its resource id and its trigger's callback URL (repeatable)
    #[arg(long, value_name = "RESOURCE_ID=CALLBACK_URL")]
    pub logic_app: Vec<String>,
}

/// Options of `alerts deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployAlertsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub receivers: ReceiverArgs,
    /// Print the ARM JSON of every resource that would be created or changed; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Options of `alerts show`.
#[derive(Debug, Clone, Args)]
pub struct ShowAlertsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The receivers `deploy` was given (without any, receivers are not compared)
    #[command(flatten)]
    pub receivers: ReceiverArgs,
}

/// Options of `alerts delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteAlertsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print what would be deleted; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}
