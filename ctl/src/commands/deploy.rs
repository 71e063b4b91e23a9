//! `cryptoctl deploy` and `cryptoctl rollback`: a preflight through Resource Manager (who the
//! credentials are and which subscription, once; per VM, just before its turn: it exists, runs and
//! its guest agent is ready), then one run of the deploy script per VM (`remote/deploy.sh`). VMs go
//! in resource group then name order, one at a time by default; after the first failure no further
//! VM is started, and the summary names every VM as ok, failed or not attempted. The outcome is the
//! script's own exit status from its framed result, never the Azure call returning.

mod agent;

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use self::agent::Carry;
use super::{Ctx, UsageError};
use crate::{
    arm::{ArmError, GuestAgent, VirtualMachine, client::ARM_SCOPE},
    auth::{TokenSource as _, identity::Identity},
    cli::{AppArgs, DeployArgs, GlobalArgs, RollbackArgs, TransportKind},
    remote::{
        Remote,
        deploy::{self, AgentKind, AgentSource, Canary, DeployPlan},
        frame::Frame,
        script::RUN_COMMAND_BUDGET,
    },
};

/// Exit status when a deploy or rollback failed on a VM.
pub const EXIT_DEPLOY_FAILED: u8 = 1;

fn app_dir(app: &AppArgs) -> String {
    app.app_dir.as_ref().map_or_else(
        || format!("/home/{}/Repositories/cryptobot", app.app_user),
        |d| d.as_str().to_owned(),
    )
}

fn check_user(app: &AppArgs) -> Result<(), UsageError> {
    if app.app_user.as_str() == "root" {
        return Err(UsageError(
            "--app-user root: the bot and its files belong to an unprivileged user".into(),
        ));
    }
    Ok(())
}

fn agent_config(args: &DeployArgs) -> anyhow::Result<String> {
    match &args.agent_config {
        None => Ok(deploy::AGENT_CONFIG.to_owned()),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("--agent-config {}: {e}", p.display())),
    }
}

/// The plan of a deploy, before the agent is placed (ssh uploads it per VM, Blob Storage once).
fn deploy_plan(global: &GlobalArgs, args: &DeployArgs) -> anyhow::Result<(DeployPlan, Carry)> {
    check_user(&args.app)?;
    let (agent, sha, agent_kind, carry) = agent::agent_source(global, args)?;
    let plan = DeployPlan {
        rollback: false,
        app_user: args.app.app_user.as_str().to_owned(),
        app_dir: app_dir(&args.app),
        repo_url: args.repo_url.clone(),
        git_ref: args.git_ref.clone(),
        skip_app: args.skip_app,
        skip_agent: args.skip_agent,
        canary: match (&args.canary_profile, args.canary_reset) {
            (Some(p), _) => Canary::Profile(p.clone()),
            (None, true) => Canary::Reset,
            (None, false) => Canary::Keep,
        },
        worker_watchdog: args.worker_watchdog,
        agent,
        agent_sha256: sha,
        agent_kind,
        agent_config: agent_config(args)?,
        force_config: args.force_config,
        gate_timeout: args.app.gate_timeout,
        commit: None,
    };
    Ok((plan, carry))
}

fn rollback_plan(args: &RollbackArgs) -> anyhow::Result<DeployPlan> {
    check_user(&args.app)?;
    Ok(DeployPlan {
        rollback: true,
        app_user: args.app.app_user.as_str().to_owned(),
        app_dir: app_dir(&args.app),
        repo_url: None,
        git_ref: "master".parse().map_err(|e: String| anyhow::anyhow!(e))?,
        skip_app: args.skip_app,
        skip_agent: !args.agent,
        canary: Canary::Keep,
        worker_watchdog: None,
        agent: AgentSource::None,
        agent_sha256: None,
        agent_kind: AgentKind::Binary,
        agent_config: deploy::AGENT_CONFIG.to_owned(),
        force_config: false,
        gate_timeout: args.app.gate_timeout,
        commit: args.commit.clone(),
    })
}

fn print_dry_run(global: &GlobalArgs, plan: &DeployPlan) {
    println!("== plan (dry run: nothing is contacted or changed)");
    for line in plan.describe() {
        println!("  - {line}");
    }
    println!("== transport: {}", global.transport.as_str());
    let args = plan.args(RUN_COMMAND_BUDGET);
    println!("== script arguments ($1..${})", args.len());
    for (i, (name, value)) in args.iter().enumerate() {
        let shown = if value.len() > 100 {
            format!("<{} bytes of base64>", value.len())
        } else {
            deploy::redact_url(value)
        };
        println!("  ${} {name} = {shown}", i + 1);
    }
    println!("== script (ctl/src/remote/deploy.sh)");
    print!("{}", deploy::SCRIPT);
}

/// `deploy --dry-run`.
pub(super) fn dry_run_deploy(global: &GlobalArgs, args: &DeployArgs) -> anyhow::Result<u8> {
    let (plan, _) = deploy_plan(global, args)?;
    print_dry_run(global, &plan);
    Ok(0)
}

/// `rollback --dry-run`.
pub(super) fn dry_run_rollback(global: &GlobalArgs, args: &RollbackArgs) -> anyhow::Result<u8> {
    print_dry_run(global, &rollback_plan(args)?);
    Ok(0)
}

/// One VM's outcome.
struct Outcome {
    vm: String,
    group: String,
    ok: bool,
    text: String,
    /// Why the script failed, in its own words (for the summary).
    reason: Option<String>,
}

async fn preflight(remote: &Remote, vm: &VirtualMachine, deadline: Instant) -> Result<(), String> {
    let iv = remote
        .arm
        .instance_view(&vm.id, deadline)
        .await
        .map_err(|e| format!("cannot read the instance view: {e}"))?;
    match iv.power_state() {
        Some(p) if !p.is_running() => return Err(format!("VM is not running: {}", p.display)),
        None => return Err("the VM's power state is unknown".into()),
        _ => {}
    }
    if remote.transport == TransportKind::RunCommand {
        match iv.guest_agent() {
            GuestAgent::Ready | GuestAgent::Unknown => {}
            GuestAgent::NotReady(why) => {
                return Err(format!("the guest agent is not ready: {why}"));
            }
        }
    }
    Ok(())
}

async fn one(
    remote: Remote,
    vm: VirtualMachine,
    mut plan: DeployPlan,
    carry: Carry,
    offline: bool,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome {
        vm: vm.name.clone(),
        group: vm.resource_group(),
        ok: false,
        text: String::new(),
        reason: None,
    };
    if !offline && let Err(e) = preflight(&remote, &vm, deadline).await {
        out.text = format!("preflight: {e}");
        return out;
    }
    if let Carry::Staged(staged) = &carry {
        match staged.sas(agent::sas_lifetime(plan.gate_timeout)) {
            Ok(sas) => {
                plan.agent = AgentSource::Blob {
                    url: staged.url.clone(),
                    sas: Some(sas),
                };
            }
            Err(e) => {
                out.text = format!("cannot sign the agent's SAS: {e}");
                return out;
            }
        }
    }
    if let Carry::Upload(path) = &carry {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                out.text = format!("{}: {e}", path.display());
                return out;
            }
        };
        let uploaded = match remote.ssh_host(&vm, deadline).await {
            Ok(host) => remote.ssh_upload(&host, data, deadline).await,
            Err(e) => Err(e),
        };
        match uploaded {
            Ok(p) => plan.agent = AgentSource::Uploaded(p),
            Err(e) => {
                out.text = format!("copying the agent: {e}");
                return out;
            }
        }
    }
    let budget = match remote.transport {
        TransportKind::RunCommand => RUN_COMMAND_BUDGET,
        TransportKind::Ssh => 0,
    };
    let args = plan.args(budget);
    let frame = remote
        .run_script(
            &vm,
            deploy::SCRIPT,
            &args,
            &plan.ssh_remote_command(),
            deadline,
        )
        .await;
    match frame {
        Err(e) => out.text = format!("the deploy script did not report: {e}"),
        Ok(f) => {
            out.ok = f.exit == 0 && f.get("result") == Some("ok");
            out.text = describe(&f);
            out.reason = f.blob("reason").ok().flatten();
        }
    }
    out
}

fn describe(f: &Frame) -> String {
    let mut text = String::new();
    let field = |k: &str| f.get(k).unwrap_or("-").to_owned();
    text.push_str(&format!(
        "{} (exit {}): commit {} (previous {})",
        field("result"),
        f.exit,
        field("commit"),
        field("previous")
    ));
    if let Some(a) = f.get("agent") {
        let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
        text.push_str(&format!(
            ", agent sha256 {} (previous {})",
            short(a),
            short(f.get("agent_previous").unwrap_or("-"))
        ));
    }
    if let Some(c) = f.get("config") {
        text.push_str(&format!(", agent.toml {c}"));
    }
    if let Some(m) = f.get("migrated") {
        text.push_str(&format!(", migrated from the old scripts: {m}"));
    }
    if let Some(b) = f.get("backoff_import") {
        text.push_str(&format!(", old restart_backoff.json {b}"));
    }
    if f.flag("restored_migration") {
        text.push_str(", old units restored");
    }
    if f.flag("rolled_back") {
        text.push_str(&format!(
            ", rolled back ({})",
            f.get("after_rollback").unwrap_or("not checked")
        ));
    }
    if let Ok(Some(r)) = f.blob("reason") {
        text.push_str(&format!("\n  reason: {r}"));
    }
    if let Ok(Some(log)) = f.blob("log") {
        for l in log.lines() {
            text.push_str(&format!("\n  | {l}"));
        }
    }
    text
}

/// Prints who the credentials are (the access token's claims, decoded without verifying them;
/// never the token) and the subscription by name. An unreadable subscription stops the deploy,
/// except when the credentials may not read it (403), which only leaves its name out.
async fn print_account(ctx: &Ctx) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let via =
        |chosen: Option<&str>| chosen.map_or(String::new(), |c| format!(" via the {c} credential"));
    let token = ctx.tokens.token(ARM_SCOPE).await?;
    match Identity::from_access_token(&token) {
        Some(id) => println!("signed in as {id}{}", via(ctx.tokens.chosen())),
        None => println!(
            "signed in{} (the access token does not say who)",
            via(ctx.tokens.chosen())
        ),
    }
    drop(token);
    let id = ctx.subscription()?.as_str();
    let endpoint = &ctx.global.arm_endpoint;
    match ctx.arm.subscription(id, deadline).await {
        Ok(sub) => {
            println!(
                "subscription \"{}\" ({}, {}) at {endpoint}",
                sub.display_name, sub.subscription_id, sub.state
            );
            if matches!(sub.state.as_str(), "Disabled" | "Deleted") {
                anyhow::bail!(
                    "subscription {id} is {}: nothing can be deployed",
                    sub.state
                );
            }
        }
        Err(ArmError::Api { status: 403, .. }) => {
            println!("subscription {id} at {endpoint} (these credentials may not read its name)");
        }
        Err(e) => anyhow::bail!("cannot read subscription {id}: {e}"),
    }
    Ok(())
}

async fn run_plan(
    ctx: &Ctx,
    selection: &crate::cli::Selection,
    plan: DeployPlan,
    carry: Carry,
    max_parallel: u16,
    offline: bool,
) -> anyhow::Result<u8> {
    let vms = if offline {
        println!(
            "preflight skipped: --transport ssh with --host does not use Azure Resource Manager \
             (credentials, the VM's existence, power state and guest agent are not checked)"
        );
        let (Some(group), Some(name), 1, 1) = (
            selection.resource_groups.first(),
            selection.vm_names.first(),
            selection.resource_groups.len(),
            selection.vm_names.len(),
        ) else {
            return Err(
                UsageError("with --host, name exactly one VM with -g and -n".into()).into(),
            );
        };
        let vm: VirtualMachine = serde_json::from_value(serde_json::json!({
            "id": format!(
                "/subscriptions/-/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
            ),
            "name": name.as_str(),
        }))?;
        vec![vm]
    } else {
        print_account(ctx).await?;
        let resolved = ctx.resolve(selection, false).await?;
        let mut missing = false;
        for m in &resolved.missing {
            println!("{} ({}): not found: {}", m.vm, m.resource_group, m.message);
            missing = true;
        }
        if missing || resolved.vms.is_empty() {
            eprintln!("nothing deployed: not every selected VM exists");
            return Ok(EXIT_DEPLOY_FAILED);
        }
        // `resolve` orders them by resource group, then name (case-insensitively).
        resolved.vms
    };
    let verb = if plan.rollback { "rollback" } else { "deploy" };
    let width = usize::from(max_parallel).max(1);
    let per_vm = ctx.global.timeout.max(plan.gate_timeout * 3);
    let carry = agent::stage(
        ctx,
        carry,
        per_vm * u32::try_from(vms.len()).unwrap_or(u32::MAX),
    )
    .await?;
    if vms.len() > 1 {
        println!(
            "{verb} order (resource group, then name): {}; {}",
            vms.iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if width == 1 {
                "one at a time, stopping at the first failure".to_owned()
            } else {
                format!("up to {width} at once, starting no further VM after a failure")
            }
        );
    }
    // The outcome of each VM, in order; `None` at the end: not attempted (every started VM
    // finishes before the summary).
    let mut outcomes: Vec<Option<Outcome>> = vms.iter().map(|_| None).collect();
    let mut next = 0;
    let mut first_failure: Option<usize> = None;
    let mut set = JoinSet::new();
    loop {
        while first_failure.is_none() && set.len() < width && next < vms.len() {
            let vm = &vms[next];
            println!("== {verb} {} ({})", vm.name, vm.resource_group());
            let deadline = Instant::now() + ctx.global.timeout.max(plan.gate_timeout * 3);
            let i = next;
            let task = one(
                ctx.remote.clone(),
                vm.clone(),
                plan.clone(),
                carry.clone(),
                offline,
                deadline,
            );
            set.spawn(async move { (i, task.await) });
            next += 1;
        }
        let Some(r) = set.join_next().await else {
            break;
        };
        let (i, o) = r?;
        println!("{} ({}): {}", o.vm, o.group, o.text);
        if !o.ok && first_failure.is_none() {
            first_failure = Some(i);
        }
        outcomes[i] = Some(o);
    }
    println!("== summary ({verb} order)");
    let (mut ok, mut failed, mut skipped) = (0, 0, 0);
    for (vm, outcome) in vms.iter().zip(&outcomes) {
        let status = match outcome {
            Some(o) if o.ok => {
                ok += 1;
                "ok".to_owned()
            }
            Some(o) => {
                failed += 1;
                let first = o.text.lines().next().unwrap_or("");
                format!("FAILED: {}", o.reason.as_deref().unwrap_or(first))
            }
            None => {
                skipped += 1;
                let culprit = first_failure.map_or("-", |f| vms[f].name.as_str());
                format!(
                    "skipped: not attempted, nothing changed on it ({verb} stopped after {culprit} failed)"
                )
            }
        };
        println!("  {} ({}): {status}", vm.name, vm.resource_group());
    }
    if failed + skipped > 0 {
        eprintln!("{verb} failed: {ok} ok, {failed} failed, {skipped} not attempted");
        return Ok(EXIT_DEPLOY_FAILED);
    }
    Ok(0)
}

/// `cryptoctl deploy`.
pub(super) async fn run_deploy(ctx: &Ctx, args: &DeployArgs, offline: bool) -> anyhow::Result<u8> {
    let (plan, carry) = deploy_plan(&ctx.global, args)?;
    run_plan(
        ctx,
        &args.selection,
        plan,
        carry,
        args.app.max_parallel,
        offline,
    )
    .await
}

/// `cryptoctl rollback`.
pub(super) async fn run_rollback(
    ctx: &Ctx,
    args: &RollbackArgs,
    offline: bool,
) -> anyhow::Result<u8> {
    let plan = rollback_plan(args)?;
    run_plan(
        ctx,
        &args.selection,
        plan,
        Carry::Nothing,
        args.app.max_parallel,
        offline,
    )
    .await
}
