//! `cryptoctl alerts deploy | show | delete`: the alerting that runs in Azure itself, so a VM that
//! has gone silent (agent dead, VM deallocated, network gone) still raises an alert. One action
//! group (e-mail, webhook and Logic App receivers, all with the common alert schema) and the log
//! alert rules of [`rules::RULES`] over the agents' Application Insights telemetry, written with
//! idempotent PUTs and tagged `managed-by: cryptoctl`.
//!
//! `deploy` reads each resource first and writes only what differs (`--dry-run` prints the ARM
//! JSON of what it would write and writes nothing); `show` reports what exists and where it
//! drifted from what `deploy` would write; `delete` removes only tagged resources with the prefix.

pub mod drift;
pub mod rules;

use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use self::rules::{ACTION_GROUP_SUFFIX, MANAGED_TAG, RULES, Receivers, action_group_body};
use super::{Ctx, UsageError};
use crate::{
    arm::monitor::{COMPONENTS_API_VERSION, MonitorType, PutOutcome, WORKSPACES_API_VERSION},
    cli::alerts::{
        AlertsAction, AlertsArgs, DeleteAlertsArgs, DeployAlertsArgs, ReceiverArgs, ShowAlertsArgs,
        TargetArgs,
    },
    cli::{GlobalArgs, OutputFormat},
    output,
    validate::alerts::{
        self as inputs, LogicAppReceiver, ScopeKind, WebhookUrl, check_resource_name, redact_body,
    },
};

/// The receivers, validated. URLs are parsed here rather than by clap, whose message would
/// repeat the value, credentials and all; these errors never do.
pub fn receivers(args: &ReceiverArgs) -> Result<Receivers, UsageError> {
    let usage = |e: inputs::InputError| UsageError(e.0);
    Ok(Receivers {
        email: args.email.clone(),
        webhook: args
            .webhook
            .iter()
            .map(|w| w.parse::<WebhookUrl>())
            .collect::<Result<_, _>>()
            .map_err(usage)?,
        logic_app: args
            .logic_app
            .iter()
            .map(|l| l.parse::<LogicAppReceiver>())
            .collect::<Result<_, _>>()
            .map_err(usage)?,
    })
}

/// One resource `deploy` writes.
#[derive(Debug, Clone)]
struct Desired {
    kind: MonitorType,
    name: String,
    id: String,
    body: Value,
}

/// Runs `alerts …`; returns the exit code.
pub async fn run(global: &GlobalArgs, args: &AlertsArgs) -> anyhow::Result<u8> {
    let ctx = Ctx::offline(global).await?;
    match &args.action {
        AlertsAction::Deploy(a) => deploy(&ctx, a).await,
        AlertsAction::Show(a) => show(&ctx, a).await,
        AlertsAction::Delete(a) => delete(&ctx, a).await,
    }
}

/// The region of the rules: `--location`, else the scope resource's own.
async fn location(ctx: &Ctx, target: &TargetArgs, deadline: Instant) -> anyhow::Result<String> {
    if let Some(l) = &target.location {
        return Ok(l.as_str().to_owned());
    }
    let scope = target.scope();
    let (what, version) = match scope.kind {
        ScopeKind::AppInsights => ("Application Insights resource", COMPONENTS_API_VERSION),
        ScopeKind::Workspace => ("Log Analytics workspace", WORKSPACES_API_VERSION),
    };
    let found = ctx
        .arm
        .get_resource(&scope.id, version, deadline)
        .await
        .with_context(|| format!("reading the {what} {}", scope.id))?
        .with_context(|| format!("the {what} {} does not exist", scope.id))?;
    found["location"]
        .as_str()
        .map(|l| l.replace(' ', "").to_ascii_lowercase())
        .with_context(|| format!("the {what} {} has no location", scope.id))
}

/// Everything `deploy` writes, action group first.
fn desired(
    target: &TargetArgs,
    receivers: &Receivers,
    location: &str,
) -> anyhow::Result<Vec<Desired>> {
    let scope = target.scope();
    let sub = scope.subscription.as_str();
    let rg = target.resource_group();
    let prefix = target.name_prefix.as_str();
    let ag_name = format!("{prefix}{ACTION_GROUP_SUFFIX}");
    check_resource_name(&ag_name)?;
    let ag_id = MonitorType::ActionGroup.id(sub, rg, &ag_name);
    let mut out = vec![Desired {
        kind: MonitorType::ActionGroup,
        name: ag_name,
        id: ag_id.clone(),
        body: action_group_body(&target.name_prefix.short_name(), receivers),
    }];
    for rule in &RULES {
        let name = rule.name(prefix);
        check_resource_name(&name)?;
        out.push(Desired {
            kind: MonitorType::ScheduledQueryRule,
            id: MonitorType::ScheduledQueryRule.id(sub, rg, &name),
            name,
            body: rule.body(scope, location, &ag_id),
        });
    }
    Ok(out)
}

fn label(kind: MonitorType, name: &str) -> String {
    format!("{}/{name}", kind.segment())
}

async fn deploy(ctx: &Ctx, args: &DeployAlertsArgs) -> anyhow::Result<u8> {
    let receivers = receivers(&args.receivers)?;
    if receivers.is_empty() {
        eprintln!("warning: no --email, --webhook or --logic-app: the alerts will notify nobody");
    }
    let deadline = Instant::now() + ctx.global.timeout;
    let location = location(ctx, &args.target, deadline).await?;
    let plan = desired(&args.target, &receivers, &location)?;
    let mut planned = Vec::new();
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    for d in &plan {
        let version = d.kind.api_version();
        let current = ctx
            .arm
            .get_resource(&d.id, version, deadline)
            .await
            .with_context(|| format!("reading {}", label(d.kind, &d.name)))?;
        let changes = current.as_ref().map(|c| drift::differences(&d.body, c));
        let action = match &changes {
            None => "create",
            Some(c) if c.is_empty() => "unchanged",
            Some(_) => "update",
        };
        if args.dry_run {
            let mut entry = json!({"action": action, "id": d.id, "apiVersion": version});
            if action != "unchanged" {
                entry["body"] = redact_body(&d.body);
            }
            if let Some(c) = changes.as_ref().filter(|c| !c.is_empty()) {
                entry["changes"] = json!(c);
            }
            planned.push(entry);
            continue;
        }
        match action {
            "unchanged" => {
                unchanged += 1;
                println!("unchanged {}", label(d.kind, &d.name));
            }
            _ => {
                let outcome = ctx
                    .arm
                    .put_resource(&d.id, version, &d.body, deadline)
                    .await
                    .with_context(|| format!("writing {}", label(d.kind, &d.name)))?;
                match outcome {
                    PutOutcome::Created => {
                        created += 1;
                        println!("created   {}", label(d.kind, &d.name));
                    }
                    PutOutcome::Updated => {
                        updated += 1;
                        let what = changes.unwrap_or_default().join(", ");
                        println!("updated   {} ({what})", label(d.kind, &d.name));
                    }
                }
            }
        }
    }
    if args.dry_run {
        output::print_json(&planned);
        eprintln!("dry run: nothing was changed");
    } else {
        println!(
            "{} resources in resource group {}: {created} created, {updated} updated, {unchanged} unchanged",
            plan.len(),
            args.target.resource_group()
        );
    }
    Ok(0)
}

fn is_managed(resource: &Value, prefix: &str) -> bool {
    let tagged = resource["tags"][MANAGED_TAG.0].as_str() == Some(MANAGED_TAG.1);
    let name = resource["name"].as_str().unwrap_or("");
    tagged
        && name
            .to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase())
}

/// One row of `show`.
#[derive(Debug, serde::Serialize)]
struct ShowRow {
    resource: String,
    state: &'static str,
    differences: Vec<String>,
    id: String,
}

async fn show(ctx: &Ctx, args: &ShowAlertsArgs) -> anyhow::Result<u8> {
    let receivers = receivers(&args.receivers)?;
    let compare_receivers = !receivers.is_empty();
    let deadline = Instant::now() + ctx.global.timeout;
    let location = location(ctx, &args.target, deadline).await?;
    let mut plan = desired(&args.target, &receivers, &location)?;
    if !compare_receivers && let Some(p) = plan[0].body["properties"].as_object_mut() {
        p.retain(|k, _| !k.ends_with("Receivers"));
    }
    let mut rows = Vec::new();
    for d in &plan {
        let current = ctx
            .arm
            .get_resource(&d.id, d.kind.api_version(), deadline)
            .await
            .with_context(|| format!("reading {}", label(d.kind, &d.name)))?;
        let (state, differences) = match current {
            None => ("missing", Vec::new()),
            Some(c) => {
                let diff = drift::differences(&d.body, &c);
                (if diff.is_empty() { "ok" } else { "drift" }, diff)
            }
        };
        rows.push(ShowRow {
            resource: label(d.kind, &d.name),
            state,
            differences,
            id: d.id.clone(),
        });
    }
    let scope = args.target.scope();
    let (sub, rg) = (scope.subscription.as_str(), args.target.resource_group());
    for kind in MonitorType::ALL {
        let listed = ctx
            .arm
            .list_monitor(sub, rg, kind, deadline)
            .await
            .with_context(|| format!("listing {} in {rg}", kind.segment()))?;
        for r in listed {
            let name = r["name"].as_str().unwrap_or("").to_owned();
            let known = plan
                .iter()
                .any(|d| d.kind == kind && d.name.eq_ignore_ascii_case(&name));
            if !known && is_managed(&r, args.target.name_prefix.as_str()) {
                rows.push(ShowRow {
                    resource: label(kind, &name),
                    state: "extra",
                    differences: Vec::new(),
                    id: r["id"].as_str().unwrap_or("").to_owned(),
                });
            }
        }
    }
    match ctx.global.output {
        OutputFormat::Json => output::print_json(&rows),
        OutputFormat::Table => {
            let mut t = output::table(&["RESOURCE", "STATE", "DIFFERENCES"]);
            for r in &rows {
                t.add_row([
                    r.resource.clone(),
                    r.state.to_owned(),
                    if r.differences.is_empty() {
                        "-".to_owned()
                    } else {
                        r.differences.join(", ")
                    },
                ]);
            }
            println!("{t}");
            if !compare_receivers {
                println!("(receivers not compared: no --email, --webhook or --logic-app given)");
            }
        }
    }
    let drifted = rows.iter().filter(|r| r.state != "ok").count();
    if drifted == 0 {
        println!(
            "no drift: {} resources as deploy would write them",
            rows.len()
        );
        Ok(0)
    } else {
        println!(
            "{drifted} of {} resources differ from what deploy would write",
            rows.len()
        );
        Ok(1)
    }
}

async fn delete(ctx: &Ctx, args: &DeleteAlertsArgs) -> anyhow::Result<u8> {
    let deadline = Instant::now() + ctx.global.timeout;
    let scope = args.target.scope();
    let (sub, rg) = (scope.subscription.as_str(), args.target.resource_group());
    let prefix = args.target.name_prefix.as_str();
    let (mut deleted, mut kept) = (0, 0);
    // Rules first: they refer to the action group.
    for kind in MonitorType::ALL.iter().rev() {
        let listed = ctx
            .arm
            .list_monitor(sub, rg, *kind, deadline)
            .await
            .with_context(|| format!("listing {} in {rg}", kind.segment()))?;
        for r in listed {
            let name = r["name"].as_str().unwrap_or("");
            if !is_managed(&r, prefix) {
                kept += 1;
                continue;
            }
            let id = r["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| kind.id(sub, rg, name));
            if args.dry_run {
                println!("would delete {}", label(*kind, name));
            } else {
                ctx.arm
                    .delete_resource(&id, kind.api_version(), deadline)
                    .await
                    .with_context(|| format!("deleting {}", label(*kind, name)))?;
                println!("deleted {}", label(*kind, name));
            }
            deleted += 1;
        }
    }
    println!(
        "{deleted} resource{} {}deleted; {kept} not created by cryptoctl (prefix {prefix}, tag {}={}) left alone",
        if deleted == 1 { "" } else { "s" },
        if args.dry_run { "would be " } else { "" },
        MANAGED_TAG.0,
        MANAGED_TAG.1
    );
    Ok(0)
}
