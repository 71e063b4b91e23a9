//! One file per subcommand; [`run`] builds the shared context (credentials, ARM client, transport,
//! limiter) and dispatches. Commands return their exit code.

pub mod alerts;
mod control;
mod deploy;
mod health;
mod logs;
mod pause;
mod restart;
mod resume;
mod vms;

use std::sync::Arc;

use crate::{
    arm::ArmClient,
    auth::{CredentialChain, TokenSource as _, subscription},
    cli::{Cli, Command, EXIT_INTERRUPTED, GlobalArgs, Selection, TransportKind},
    fleet::{self, FanOut, Resolved},
    limiter::Limiter,
    remote::{Remote, SshSettings},
    validate::SubscriptionId,
};

const NOTHING_SELECTED: &str = "choose VMs with --resource-group, --vm-name, --tag or --all";

/// A usage error found after parsing (exit 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What every command needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Resource Manager.
    pub arm: ArmClient,
    /// The subscription: the first `--subscription`, else the Azure CLI's default; `None` only
    /// where Resource Graph's scope is management groups and no `--subscription` was given.
    pub subscription: Option<SubscriptionId>,
    /// Runs actions on VMs.
    pub remote: Remote,
    /// Concurrency.
    pub limiter: Limiter,
    /// Global options.
    pub global: GlobalArgs,
    /// The credential chain (for saying who the credentials are).
    pub tokens: Arc<CredentialChain>,
    /// The HTTP client every Azure client of the command shares (one TLS setup, one pool).
    pub http: reqwest::Client,
}

impl Ctx {
    /// A context for Azure; `subscription_needed` is false when management groups are the scope.
    async fn new(global: &GlobalArgs, subscription_needed: bool) -> anyhow::Result<Ctx> {
        Ctx::build(global, true, subscription_needed).await
    }

    /// A context that never calls Azure (ssh with `--host`): no credential or subscription lookup.
    async fn offline(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        Ctx::build(global, false, false).await
    }

    async fn build(
        global: &GlobalArgs,
        online: bool,
        subscription_needed: bool,
    ) -> anyhow::Result<Ctx> {
        let http = crate::tls::http_client()?;
        let limiter = Limiter::new(usize::from(global.concurrency));
        let tokens = Arc::new(CredentialChain::new(&http));
        let mut arm = ArmClient::new(
            http.clone(),
            &global.arm_endpoint,
            tokens.clone(),
            limiter.clone(),
        )?;
        arm.poll_interval = global.poll_interval;
        let given = global.subscription.first().map(String::as_str);
        let subscription = if online && (subscription_needed || given.is_some()) {
            Some(subscription(given).await?)
        } else {
            None
        };
        if online {
            // Fail early and once when no credential works, rather than once per VM.
            tokens.token(crate::arm::client::ARM_SCOPE).await?;
        }
        let command: Vec<String> = global
            .ssh_command
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if command.is_empty() {
            return Err(UsageError("--ssh-command is empty".into()).into());
        }
        let remote = Remote {
            arm: arm.clone(),
            transport: global.transport,
            ssh: SshSettings {
                command,
                user: global.ssh_user.clone(),
                key: global.ssh_key.clone(),
                host: global.host.clone(),
            },
            agent: global.agent_path.clone(),
        };
        Ok(Ctx {
            arm,
            subscription,
            remote,
            limiter,
            global: global.clone(),
            tokens,
            http,
        })
    }

    /// The VMs of a selection, from Resource Manager's lists in the subscription, or from one
    /// Resource Graph query with several `--subscription`s; a usage error when nothing is
    /// selected or `--host` would apply to several VMs.
    async fn resolve(&self, sel: &Selection, empty_means_all: bool) -> anyhow::Result<Resolved> {
        if sel.is_empty() && !empty_means_all {
            return Err(UsageError(NOTHING_SELECTED.into()).into());
        }
        let resolved = if self.global.subscription.len() > 1 {
            // several subscriptions: one Resource Graph query lists the selection in all of them
            let scope = fleet::graph_scope(&self.global.subscription, None, &[])
                .map_err(|e| UsageError(e.to_string()))?;
            let inventory = fleet::inventory(&self.arm, &scope, sel).await;
            Resolved {
                vms: inventory.vms.into_iter().map(|g| g.vm).collect(),
                missing: inventory.missing,
            }
        } else {
            fleet::resolve(&self.arm, self.subscription()?, sel).await
        };
        self.check_host(resolved.vms.len())?;
        Ok(resolved)
    }

    /// The subscription of commands that list through Resource Manager.
    fn subscription(&self) -> Result<&SubscriptionId, UsageError> {
        self.subscription.as_ref().ok_or_else(|| {
            UsageError("this command needs a subscription: pass --subscription".into())
        })
    }

    /// A usage error when `--host` (ssh) would apply to `selected` VMs, more than one.
    fn check_host(&self, selected: usize) -> Result<(), UsageError> {
        if self.global.host.is_some() && self.global.transport == TransportKind::Ssh && selected > 1
        {
            return Err(UsageError(format!(
                "--host applies to a single VM, but {selected} VMs are selected"
            )));
        }
        Ok(())
    }
}

/// Runs the command line's command; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let selection = match &cli.command {
        Command::Vms(_) | Command::Alerts(_) => None,
        Command::Health(a) => Some(&a.selection),
        Command::Restart(a) => Some(&a.selection),
        Command::Pause(a) => Some(&a.selection),
        Command::Resume(a) => Some(&a.selection),
        Command::Logs(a) => Some(&a.selection),
        Command::Deploy(a) => Some(&a.selection),
        Command::Rollback(a) => Some(&a.selection),
    };
    cli.check_subscriptions().map_err(UsageError)?;
    if selection.is_some_and(Selection::is_empty) {
        return Err(UsageError(NOTHING_SELECTED.into()).into());
    }
    match &cli.command {
        Command::Alerts(args) => return alerts::run(&cli.global, args).await,
        Command::Deploy(args) if args.app.dry_run => {
            return deploy::dry_run_deploy(&cli.global, args);
        }
        Command::Rollback(args) if args.app.dry_run => {
            return deploy::dry_run_rollback(&cli.global, args);
        }
        Command::Deploy(_) | Command::Rollback(_)
            if cli.global.transport == TransportKind::Ssh && cli.global.host.is_some() =>
        {
            let ctx = Ctx::offline(&cli.global).await?;
            return match &cli.command {
                Command::Deploy(args) => deploy::run_deploy(&ctx, args, true).await,
                Command::Rollback(args) => deploy::run_rollback(&ctx, args, true).await,
                _ => unreachable!("matched above"),
            };
        }
        _ => {}
    }
    let ctx = Ctx::new(&cli.global, !cli.scoped_by_management_groups()).await?;
    match &cli.command {
        Command::Vms(args) => vms::run(&ctx, args).await,
        Command::Health(args) => health::run(&ctx, args).await,
        Command::Restart(args) => restart::run(&ctx, args).await,
        Command::Pause(args) => pause::run(&ctx, args).await,
        Command::Resume(args) => resume::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Deploy(args) => deploy::run_deploy(&ctx, args, false).await,
        Command::Rollback(args) => deploy::run_rollback(&ctx, args, false).await,
        Command::Alerts(args) => alerts::run(&cli.global, args).await,
    }
}

/// Prints how many VMs finished when the run was interrupted.
fn report_interrupted<R>(fan: &FanOut<R>) -> Option<u8> {
    if fan.interrupted {
        eprintln!(
            "interrupted: {} of {} VMs finished",
            fan.results.len(),
            fan.total
        );
        Some(EXIT_INTERRUPTED)
    } else {
        None
    }
}
