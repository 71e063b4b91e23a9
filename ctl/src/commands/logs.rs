//! `cryptoctl logs`: a bounded tail of the worker's (or the agent's) journal on each VM. Over
//! run-command the tail is shortened on the VM until it fits the 4096-byte output limit, and says so.

use std::time::Instant;

use super::{Ctx, report_interrupted};
use crate::{
    arm::VirtualMachine,
    cli::{LogsArgs, OutputFormat},
    fleet,
    model::{VmLogs, last_line},
    remote::{Action, Remote},
};

pub(super) async fn run(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<u8> {
    let resolved = ctx.resolve(&args.selection, false).await?;
    let unit = args.unit.as_str();
    let action = Action::Logs {
        unit,
        since: args.since,
        lines: args.lines,
        priority: args.priority.map(|p| p.number()),
    };
    let remote = ctx.remote.clone();
    let fan = fleet::for_each(
        &resolved.vms,
        &ctx.limiter,
        ctx.global.timeout,
        move |vm, deadline| {
            let remote = remote.clone();
            let action = action.clone();
            async move { logs_one(&remote, &vm, &action, unit, deadline).await }
        },
        move |vm, t| VmLogs {
            vm: vm.name.clone(),
            resource_group: vm.resource_group(),
            unit,
            lines: None,
            truncated: false,
            text: None,
            error: Some(format!(
                "no answer within {}",
                humantime::format_duration(t)
            )),
        },
    )
    .await;
    let mut rows = fan.results.clone();
    rows.extend(resolved.missing.iter().map(|m| VmLogs {
        vm: m.vm.clone(),
        resource_group: m.resource_group.clone(),
        unit,
        lines: None,
        truncated: false,
        text: None,
        error: Some(m.message.clone()),
    }));
    match ctx.global.output {
        OutputFormat::Json => crate::output::print_json(&rows),
        OutputFormat::Table => {
            for r in &rows {
                let mut head = format!("==> {} ({}) {unit}", r.vm, r.resource_group);
                if let Some(n) = r.lines {
                    head.push_str(&format!(": {n} line{}", if n == 1 { "" } else { "s" }));
                }
                if r.truncated {
                    head.push_str(" (shortened to fit run-command's 4096-byte output)");
                }
                println!("{head} <==");
                match (&r.text, &r.error) {
                    (_, Some(e)) => println!("error: {e}"),
                    (Some(t), None) => print!(
                        "{t}{}",
                        if t.ends_with('\n') || t.is_empty() {
                            ""
                        } else {
                            "\n"
                        }
                    ),
                    (None, None) => {}
                }
            }
        }
    }
    if let Some(code) = report_interrupted(&fan) {
        return Ok(code);
    }
    if rows.is_empty() {
        eprintln!("no VM matches the selection");
        return Ok(3);
    }
    Ok(if rows.iter().any(|r| r.error.is_some()) {
        3
    } else {
        0
    })
}

async fn logs_one(
    remote: &Remote,
    vm: &VirtualMachine,
    action: &Action,
    unit: &'static str,
    deadline: Instant,
) -> VmLogs {
    let mut row = VmLogs {
        vm: vm.name.clone(),
        resource_group: vm.resource_group(),
        unit,
        lines: None,
        truncated: false,
        text: None,
        error: None,
    };
    match remote.run(vm, action, deadline).await {
        Err(e) => row.error = Some(e.to_string()),
        Ok(frame) => {
            row.lines = frame
                .number("log_lines")
                .and_then(|n| u64::try_from(n).ok());
            row.truncated = frame.flag("log_truncated");
            match frame.blob("log") {
                Ok(t) => row.text = Some(t.unwrap_or_default()),
                Err(e) => row.error = Some(e.to_string()),
            }
            if frame.number("log_code") != Some(0) {
                let stderr = frame.blob("stderr").ok().flatten().unwrap_or_default();
                row.error = Some(format!(
                    "journalctl failed (exit {}){}",
                    frame.get("log_code").unwrap_or("?"),
                    last_line(&stderr)
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    row
}
