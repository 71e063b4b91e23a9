//! `cryptoctl vms`: the selected VMs (every VM of the subscription without a selection) with
//! resource group, location, size and power state: from one paged Resource Graph query across
//! subscriptions or management groups (the default), or from Resource Manager's lists and each
//! VM's instance view (`--inventory arm`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Ctx, UsageError, report_interrupted};
use crate::{
    cli::{OutputFormat, VmsArgs, telemetry::Inventory},
    fleet, output,
};

/// One row.
#[derive(Debug, Clone, Serialize)]
struct VmRow {
    vm: String,
    resource_group: String,
    location: String,
    size: String,
    power_state: Option<String>,
    os_type: Option<String>,
    tags: BTreeMap<String, String>,
    id: String,
    error: Option<String>,
}

pub(super) async fn run(ctx: &Ctx, args: &VmsArgs) -> anyhow::Result<u8> {
    if args.inventory == Inventory::ResourceGraph {
        return from_graph(ctx, args).await;
    }
    if !args.scope.management_groups.is_empty() {
        return Err(UsageError(
            "--management-group needs Resource Graph (not --inventory arm)".into(),
        )
        .into());
    }
    let resolved = ctx.resolve(&args.selection, true).await?;
    let arm = ctx.arm.clone();
    let row = |vm: &crate::arm::VirtualMachine| VmRow {
        vm: vm.name.clone(),
        resource_group: vm.resource_group(),
        location: vm.location.clone(),
        size: vm.size().to_owned(),
        power_state: None,
        os_type: vm.os_type().map(str::to_owned),
        tags: vm.tag_map(),
        id: vm.id.clone(),
        error: None,
    };
    let fan = fleet::for_each(
        &resolved.vms,
        &ctx.limiter,
        ctx.global.timeout,
        move |vm, deadline| {
            let arm = arm.clone();
            async move {
                let mut r = row(&vm);
                match arm.instance_view(&vm.id, deadline).await {
                    Ok(iv) => r.power_state = iv.power_state().map(|p| p.code),
                    Err(e) => r.error = Some(e.to_string()),
                }
                r
            }
        },
        move |vm, _| {
            let mut r = row(vm);
            r.error = Some("timed out reading the instance view".into());
            r
        },
    )
    .await;
    for m in &resolved.missing {
        eprintln!("error: {}", m.message);
    }
    print(ctx.global.output, &fan.results);
    if let Some(code) = report_interrupted(&fan) {
        return Ok(code);
    }
    let failed = !resolved.missing.is_empty() || fan.results.iter().any(|r| r.error.is_some());
    Ok(if failed { 3 } else { 0 })
}

/// The same rows from one Resource Graph query (power state included): no request per VM.
async fn from_graph(ctx: &Ctx, args: &VmsArgs) -> anyhow::Result<u8> {
    let scope = fleet::graph_scope(
        &ctx.global.subscription,
        ctx.subscription.as_ref(),
        &args.scope.management_groups,
    )
    .map_err(|e| UsageError(e.to_string()))?;
    let inv = fleet::inventory(&ctx.arm, &scope, &args.selection).await;
    let rows: Vec<VmRow> = inv
        .vms
        .iter()
        .map(|g| VmRow {
            vm: g.vm.name.clone(),
            resource_group: g.vm.resource_group(),
            location: g.vm.location.clone(),
            size: g.vm.size().to_owned(),
            power_state: g.power.as_ref().map(|p| p.code.clone()),
            os_type: g.vm.os_type().map(str::to_owned),
            tags: g.vm.tag_map(),
            id: g.vm.id.clone(),
            error: g
                .power
                .is_none()
                .then(|| "Resource Graph has no power state for this VM".to_owned()),
        })
        .collect();
    for m in &inv.missing {
        eprintln!("error: {}", m.message);
    }
    if inv.malformed > 0 {
        eprintln!(
            "warning: {} Resource Graph rows were not a VM and were ignored",
            inv.malformed
        );
    }
    print(ctx.global.output, &rows);
    let failed = !inv.missing.is_empty() || rows.iter().any(|r| r.error.is_some());
    Ok(if failed { 3 } else { 0 })
}

fn print(format: OutputFormat, rows: &[VmRow]) {
    match format {
        OutputFormat::Json => output::print_json(&rows),
        OutputFormat::Table => {
            let mut t = output::table(&["VM", "RESOURCE GROUP", "LOCATION", "SIZE", "POWER"]);
            for r in rows {
                t.add_row([
                    r.vm.clone(),
                    r.resource_group.clone(),
                    r.location.clone(),
                    r.size.clone(),
                    r.power_state
                        .clone()
                        .or_else(|| {
                            r.error
                                .as_ref()
                                .map(|e| format!("? ({})", output::shorten(e, 60)))
                        })
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
        }
    }
}
