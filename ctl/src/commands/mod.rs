//! One file per subcommand; [`run`] builds the shared context (credentials, ARM client, transport,
//! limiter) and dispatches. Commands return their exit code.

mod deploy;
mod health;
mod logs;
mod pause;
mod restart;
mod resume;
mod vms;

use std::{sync::Arc, time::Instant};

use crate::{
    arm::{ArmClient, VirtualMachine},
    auth::{CredentialChain, TokenSource as _, subscription},
    cli::{Cli, Command, EXIT_INTERRUPTED, GlobalArgs, Selection, TransportKind},
    fleet::{self, FanOut, Missing, Resolved},
    limiter::Limiter,
    model::{VmAction, last_line},
    output,
    remote::{Action, Remote, SshSettings, warning_text},
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
    /// The subscription.
    pub subscription: SubscriptionId,
    /// Runs actions on VMs.
    pub remote: Remote,
    /// Concurrency.
    pub limiter: Limiter,
    /// Global options.
    pub global: GlobalArgs,
    /// The credential chain (for saying who the credentials are).
    pub tokens: Arc<CredentialChain>,
}

impl Ctx {
    async fn new(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        Ctx::build(global, true).await
    }

    /// A context that never calls Azure (ssh with `--host`): no credential or subscription lookup.
    async fn offline(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        Ctx::build(global, false).await
    }

    async fn build(global: &GlobalArgs, online: bool) -> anyhow::Result<Ctx> {
        let http = crate::tls::http_client()?;
        let limiter = Limiter::new(usize::from(global.concurrency));
        let tokens = Arc::new(CredentialChain::new(&http));
        let mut arm = ArmClient::new(http, &global.arm_endpoint, tokens.clone(), limiter.clone())?;
        arm.poll_interval = global.poll_interval;
        let subscription = if online {
            let s = subscription(global.subscription.as_deref()).await?;
            // Fail early and once when no credential works, rather than once per VM.
            tokens.token(crate::arm::client::ARM_SCOPE).await?;
            s
        } else {
            "00000000-0000-0000-0000-000000000000".parse()?
        };
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
        })
    }

    /// The VMs of a selection; a usage error when nothing is selected or `--host` would apply to
    /// several VMs.
    async fn resolve(&self, sel: &Selection, empty_means_all: bool) -> anyhow::Result<Resolved> {
        if sel.is_empty() && !empty_means_all {
            return Err(UsageError(NOTHING_SELECTED.into()).into());
        }
        let resolved = fleet::resolve(&self.arm, &self.subscription, sel).await;
        if self.global.host.is_some()
            && self.global.transport == TransportKind::Ssh
            && resolved.vms.len() > 1
        {
            return Err(UsageError(format!(
                "--host applies to a single VM, but {} VMs are selected",
                resolved.vms.len()
            ))
            .into());
        }
        Ok(resolved)
    }
}

/// Runs the command line's command; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let selection = match &cli.command {
        Command::Vms(_) => None,
        Command::Health(a) => Some(&a.selection),
        Command::Restart(a) => Some(&a.selection),
        Command::Pause(a) => Some(&a.selection),
        Command::Resume(a) => Some(&a.selection),
        Command::Logs(a) => Some(&a.selection),
        Command::Deploy(a) => Some(&a.selection),
        Command::Rollback(a) => Some(&a.selection),
    };
    if selection.is_some_and(Selection::is_empty) {
        return Err(UsageError(NOTHING_SELECTED.into()).into());
    }
    match &cli.command {
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
    let ctx = Ctx::new(&cli.global).await?;
    match &cli.command {
        Command::Vms(args) => vms::run(&ctx, args).await,
        Command::Health(args) => health::run(&ctx, args).await,
        Command::Restart(args) => restart::run(&ctx, args).await,
        Command::Pause(args) => pause::run(&ctx, args).await,
        Command::Resume(args) => resume::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Deploy(args) => deploy::run_deploy(&ctx, args, false).await,
        Command::Rollback(args) => deploy::run_rollback(&ctx, args, false).await,
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

/// Restart, pause or resume on every selected VM; prints the results; returns the exit code.
async fn control(ctx: &Ctx, sel: &Selection, action: Action) -> anyhow::Result<u8> {
    let resolved = ctx.resolve(sel, false).await?;
    let name = action.name();
    let remote = ctx.remote.clone();
    let fan = fleet::for_each(
        &resolved.vms,
        &ctx.limiter,
        ctx.global.timeout,
        move |vm, deadline| {
            let remote = remote.clone();
            let action = action.clone();
            async move { control_one(&remote, &vm, &action, deadline).await }
        },
        move |vm, t| VmAction {
            vm: vm.name.clone(),
            resource_group: vm.resource_group(),
            action: name,
            ok: false,
            outcome: "unreachable",
            via: None,
            service: None,
            message: format!("no answer within {}", humantime::format_duration(t)),
            warnings: Vec::new(),
            duration_ms: t.as_millis() as u64,
        },
    )
    .await;
    let mut rows = fan.results.clone();
    rows.extend(resolved.missing.iter().map(|m| missing_action(m, name)));
    for r in &rows {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.vm);
        }
    }
    match ctx.global.output {
        crate::cli::OutputFormat::Json => output::print_json(&rows),
        crate::cli::OutputFormat::Table => {
            let mut t = output::table(&[
                "VM",
                "RESOURCE GROUP",
                "RESULT",
                "VIA",
                "SERVICE",
                "MESSAGE",
            ]);
            for r in &rows {
                t.add_row([
                    r.vm.clone(),
                    r.resource_group.clone(),
                    r.outcome.to_owned(),
                    output::or_dash(r.via.as_deref()),
                    output::or_dash(r.service.as_deref()),
                    output::shorten(&r.message, 100),
                ]);
            }
            println!("{t}");
        }
    }
    if let Some(code) = report_interrupted(&fan) {
        return Ok(code);
    }
    if rows.is_empty() {
        eprintln!("no VM matches the selection");
        return Ok(3);
    }
    Ok(rows.iter().map(VmAction::exit_code).max().unwrap_or(0))
}

fn missing_action(m: &Missing, action: &'static str) -> VmAction {
    VmAction {
        vm: m.vm.clone(),
        resource_group: m.resource_group.clone(),
        action,
        ok: false,
        outcome: "unreachable",
        via: None,
        service: None,
        message: m.message.clone(),
        warnings: Vec::new(),
        duration_ms: 0,
    }
}

async fn control_one(
    remote: &Remote,
    vm: &VirtualMachine,
    action: &Action,
    deadline: Instant,
) -> VmAction {
    let start = Instant::now();
    let mut row = VmAction {
        vm: vm.name.clone(),
        resource_group: vm.resource_group(),
        action: action.name(),
        ok: false,
        outcome: "unreachable",
        via: None,
        service: None,
        message: String::new(),
        warnings: Vec::new(),
        duration_ms: 0,
    };
    match remote.arm.instance_view(&vm.id, deadline).await {
        Err(e) => {
            row.message = format!("cannot read the instance view: {e}");
            row.duration_ms = fleet::elapsed_ms(start);
            return row;
        }
        Ok(iv) => match iv.power_state() {
            Some(p) if !p.is_running() => {
                row.outcome = "not-running";
                row.message = format!("VM is not running: {}", p.display);
                row.duration_ms = fleet::elapsed_ms(start);
                return row;
            }
            _ => {}
        },
    }
    let frame = match remote.run(vm, action, deadline).await {
        Ok(f) => f,
        Err(e) => {
            row.message = e.to_string();
            row.duration_ms = fleet::elapsed_ms(start);
            return row;
        }
    };
    row.service = frame.get("worker").map(str::to_owned);
    let warning = frame.get("warning");
    if let Some(w) = warning {
        row.warnings.push(warning_text(w));
    }
    match action {
        Action::Restart { .. } => {
            let via = frame.get("restart_via").unwrap_or("none").to_owned();
            let code = frame.number("restart_code");
            let text = frame
                .blob("restart_output")
                .ok()
                .flatten()
                .unwrap_or_default();
            row.message = last_line(&text).unwrap_or("").to_owned();
            row.outcome = match (via.as_str(), code) {
                (_, Some(0)) => "done",
                ("agent", Some(1)) if row.message.starts_with("deferred") => "deferred",
                ("agent", Some(1)) => "refused",
                _ => "failed",
            };
            if via == "systemctl" {
                row.warnings
                    .push("restarted with systemctl restart instead of the agent".into());
                if row.message.is_empty() {
                    row.message = match code {
                        Some(0) => "systemctl restart succeeded".into(),
                        c => format!("systemctl restart failed (exit {})", output::or_dash(c)),
                    };
                }
            }
            row.via = Some(via);
        }
        _ => {
            let code = frame.number("control_code");
            let text = frame
                .blob("control_output")
                .ok()
                .flatten()
                .unwrap_or_default();
            row.message = last_line(&text).unwrap_or("").to_owned();
            row.outcome = match (code, warning) {
                (Some(0), _) => "done",
                (_, Some(w)) if w.starts_with("agent-without-") => "unsupported",
                (None, Some("no-agent")) => "unsupported",
                _ => "failed",
            };
            if row.message.is_empty() || row.outcome == "unsupported" {
                row.message = match warning {
                    Some(w) => warning_text(w),
                    None => format!("exit {}", output::or_dash(code)),
                };
            }
            row.via = Some("agent".into());
        }
    }
    row.ok = row.outcome == "done";
    row.duration_ms = fleet::elapsed_ms(start);
    row
}
