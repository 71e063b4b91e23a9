//! The fan-out that `restart`, `pause` and `resume` share: one remote action per selected VM, its
//! outcome per VM (what the agent said, or why it could not be asked), a table or JSON, and the exit
//! code of the worst outcome.

use std::time::Instant;

use super::{Ctx, report_interrupted};
use crate::{
    arm::VirtualMachine,
    cli::Selection,
    fleet::{self, Missing},
    model::{VmAction, last_line},
    output,
    remote::{Action, Remote, warning_text},
};

/// Restart, pause or resume on every selected VM; prints the results; returns the exit code.
pub(super) async fn control(ctx: &Ctx, sel: &Selection, action: Action) -> anyhow::Result<u8> {
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
