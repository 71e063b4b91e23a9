//! `cryptoctl vms`: the selected VMs (every VM of the subscription without a selection) with
//! resource group, location, size and power state (from each VM's instance view).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Ctx, report_interrupted};
use crate::{
    cli::{OutputFormat, VmsArgs},
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
    match ctx.global.output {
        OutputFormat::Json => output::print_json(&fan.results),
        OutputFormat::Table => {
            let mut t = output::table(&["VM", "RESOURCE GROUP", "LOCATION", "SIZE", "POWER"]);
            for r in &fan.results {
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
    if let Some(code) = report_interrupted(&fan) {
        return Ok(code);
    }
    let failed = !resolved.missing.is_empty() || fan.results.iter().any(|r| r.error.is_some());
    Ok(if failed { 3 } else { 0 })
}
