//! `health --source telemetry`: fleet health from Azure's own engines. The VMs and their power
//! state come from one Resource Graph query (paged, across subscriptions or management groups),
//! their health from one query of the agents' Application Insights telemetry (the two run at
//! once); the join ([`super::join`]) makes one row per VM. Nothing runs on a VM, except with
//! `--drill`: then the VMs that are not HEALTHY or are silent (and are running) are asked over the
//! transport as `health` always does, and their rows replaced.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::{
    fan_out,
    join::{self, BY_NAME, Schema},
    print,
};
use crate::{
    arm::{
        VirtualMachine,
        logs_query::{LogsQueryClient, QueryApi},
    },
    cli::HealthArgs,
    commands::{Ctx, UsageError, report_interrupted},
    fleet,
    model::{Status, VmHealth},
};

/// Time allowed for the inventory and the telemetry query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn run(ctx: &Ctx, args: &HealthArgs) -> anyhow::Result<u8> {
    let t = &args.telemetry;
    let (api, schema) = match (&t.app_insights, &t.workspace) {
        (Some(a), None) => (QueryApi::AppInsights(a.to_string()), Schema::AppInsights),
        (None, Some(w)) => (QueryApi::LogAnalytics(w.to_string()), Schema::LogAnalytics),
        (Some(_), Some(_)) => {
            return Err(UsageError(
                "give --app-insights or --workspace, not both (check CRYPTOCTL_APP_INSIGHTS and CRYPTOCTL_WORKSPACE)".into(),
            )
            .into());
        }
        (None, None) => {
            return Err(UsageError(
                "--source telemetry needs --app-insights APP_ID or --workspace WORKSPACE_ID (or CRYPTOCTL_APP_INSIGHTS / CRYPTOCTL_WORKSPACE)".into(),
            )
            .into());
        }
    };
    let scope = fleet::graph_scope(
        &ctx.global.subscription,
        ctx.subscription.as_ref(),
        &t.scope.management_groups,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    let client = LogsQueryClient::new(
        ctx.http.clone(),
        t.query_endpoint.as_ref().map(|e| e.as_str()),
        ctx.tokens.clone(),
        api,
    )?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let query = join::query(schema);
    let started = Instant::now();
    let (inventory, answer) = tokio::join!(
        fleet::inventory(&ctx.arm, &scope, &args.selection),
        client.query(&query, join::LOOKBACK, deadline)
    );
    // as for every selection: ssh's --host names one VM's address
    ctx.check_host(inventory.vms.len())?;
    let telemetry = match answer {
        Ok(a) => {
            if let Some(p) = &a.partial {
                eprintln!(
                    "warning: the telemetry query answered in part ({p}): VMs without rows show as silent"
                );
            }
            join::read(&a.table)
        }
        Err(e) => Err(format!("cannot read the telemetry: {e}")),
    };
    if let Ok(tel) = &telemetry
        && tel.bad_rows > 0
    {
        eprintln!(
            "warning: {} rows of the telemetry answer could not be read and were ignored",
            tel.bad_rows
        );
    }
    let joined = join::join(
        &inventory.vms,
        telemetry.as_ref().map_err(String::as_str),
        Utc::now(),
        t.stale_after,
    );
    let mut rows = joined.rows;
    if inventory.malformed > 0 {
        eprintln!(
            "warning: {} Resource Graph rows were not a VM (no id or name) and were ignored",
            inventory.malformed
        );
    }
    if joined.unmatched > 0 {
        eprintln!(
            "note: telemetry of {} VMs that are not among the {} listed was ignored",
            joined.unmatched,
            inventory.vms.len()
        );
    }
    if !joined.by_name.is_empty() {
        let mut some: Vec<&str> = joined.by_name.iter().take(10).map(String::as_str).collect();
        if joined.by_name.len() > some.len() {
            some.push("…");
        }
        eprintln!(
            "warning: {} VMs matched by host name only, their agents sent no resource id (IMDS unreachable, or an older agent): {}",
            joined.by_name.len(),
            some.join(", ")
        );
    }
    tracing::info!(
        pages = inventory.pages,
        vms = inventory.vms.len(),
        elapsed = ?started.elapsed(),
        "inventory and telemetry read"
    );

    let mut interrupted = None;
    if t.drill {
        let picked: Vec<usize> = (0..rows.len()).filter(|&i| needs_drill(&rows[i])).collect();
        let vms: Vec<VirtualMachine> = picked
            .iter()
            .map(|&i| inventory.vms[i].vm.clone())
            .collect();
        if !vms.is_empty() {
            eprintln!("drilling into {} of {} VMs", vms.len(), rows.len());
        }
        let fan = fan_out(ctx, args, &vms, true).await;
        interrupted = report_interrupted(&fan);
        // matched by id: after Ctrl-C the results are only those that finished
        for mut fresh in fan.results {
            let Some(&i) = picked
                .iter()
                .find(|&&i| fresh.resource_id.as_deref() == Some(inventory.vms[i].vm.id.as_str()))
            else {
                continue;
            };
            let said = rows[i]
                .reason
                .clone()
                .unwrap_or_else(|| rows[i].status.as_str().to_owned());
            fresh.source = Some("agent");
            fresh.resource_id = rows[i].resource_id.take();
            fresh.data_age_seconds = Some(Some(0));
            fresh.warnings.push(format!("telemetry said: {said}"));
            rows[i] = fresh;
        }
    }
    for m in &inventory.missing {
        let mut row = VmHealth::new(&m.vm, &m.resource_group, "none");
        row.source = Some("telemetry");
        row.fail(Status::Unknown, m.kind, m.message.clone());
        rows.push(row);
    }
    for r in &rows {
        for w in r.warnings.iter().filter(|w| w.as_str() != BY_NAME) {
            eprintln!("warning: {}: {w}", r.vm);
        }
    }
    print(ctx.global.output, &rows, true);
    if let Some(code) = interrupted {
        return Ok(code);
    }
    if rows.is_empty() {
        eprintln!("no VM matches the selection");
        return Ok(Status::Unknown.exit_code());
    }
    Ok(Status::worst(rows.iter().map(|r| r.status)).exit_code())
}

/// A VM to ask directly: not HEALTHY by its telemetry (silent included), and not known to be
/// stopped (its power state says all there is to say then).
fn needs_drill(row: &VmHealth) -> bool {
    row.status != Status::Healthy
        && row
            .power_state
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case("running"))
}
