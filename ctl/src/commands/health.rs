//! `cryptoctl health`: one row per VM from its power state (instance view) and its agent's report
//! (one remote round trip), then a summary line; the exit code is the worst status. A VM that is not
//! running is CRITICAL (`VM is not running: VM deallocated`); one that cannot be reached is UNKNOWN
//! with the reason; one VM's failure never stops the others. `--restart` restarts the worker where
//! the VM is CRITICAL with the service down, `--alert` has each agent send its alerts.
//!
//! `--source telemetry` ([`telemetry`]) takes the VMs from Resource Graph and their health from the
//! agents' Application Insights telemetry instead, and asks the agents only with `--drill`.

mod join;
mod telemetry;

use std::time::{Duration, Instant};

use super::{Ctx, report_interrupted};
use crate::{
    arm::{GuestAgent, VirtualMachine},
    cli::{HealthArgs, OutputFormat, TransportKind, telemetry::HealthSource},
    fleet::{self, FanOut},
    model::{ActionTaken, Status, VmHealth, last_line},
    output::{self, or_dash},
    remote::{Action, Remote, UpdateCheck},
};

pub(super) async fn run(ctx: &Ctx, args: &HealthArgs) -> anyhow::Result<u8> {
    if args.telemetry.source == HealthSource::Telemetry {
        return telemetry::run(ctx, args).await;
    }
    if args.telemetry.drill || !args.telemetry.scope.management_groups.is_empty() {
        return Err(super::UsageError(
            "--drill and --management-group go with --source telemetry".into(),
        )
        .into());
    }
    let resolved = ctx.resolve(&args.selection, false).await?;
    // across subscriptions a name and resource group may repeat: each row then names its VM's id
    let fan = fan_out(ctx, args, &resolved.vms, ctx.global.subscription.len() > 1).await;
    let mut rows = fan.results.clone();
    let transport = ctx.global.transport;
    for m in &resolved.missing {
        let mut row = VmHealth::new(&m.vm, &m.resource_group, transport.as_str());
        row.fail(Status::Unknown, m.kind, m.message.clone());
        rows.push(row);
    }
    for r in &rows {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.vm);
        }
    }
    print(ctx.global.output, &rows, false);
    if let Some(code) = report_interrupted(&fan) {
        return Ok(code);
    }
    if rows.is_empty() {
        eprintln!("no VM matches the selection");
        return Ok(Status::Unknown.exit_code());
    }
    Ok(Status::worst(rows.iter().map(|r| r.status)).exit_code())
}

/// The table (with a data-age column for the telemetry source) and summary line, or the JSON.
fn print(format: OutputFormat, rows: &[VmHealth], with_age: bool) {
    match format {
        OutputFormat::Json => output::print_json(&rows),
        OutputFormat::Table => {
            println!("{}", table(rows, with_age));
            println!("{}", summary(rows));
        }
    }
}

/// Asks the agent of each VM (one remote round trip, `--restart` and `--alert` as asked); each row
/// carries its VM's resource id when `with_id`.
async fn fan_out(
    ctx: &Ctx,
    args: &HealthArgs,
    vms: &[VirtualMachine],
    with_id: bool,
) -> FanOut<VmHealth> {
    let remote = ctx.remote.clone();
    let transport = ctx.global.transport;
    let (restart, alert) = (args.restart, args.alert);
    let updates = args.check_updates.then(|| UpdateCheck {
        user: args.app_user.to_string(),
        dir: args.app_dir.as_ref().map_or_else(
            || format!("/home/{}/Repositories/cryptobot", args.app_user),
            |d| d.as_str().to_owned(),
        ),
    });
    let timeout = ctx.global.timeout;
    fleet::for_each(
        vms,
        &ctx.limiter,
        ctx.global.timeout,
        move |vm, deadline| {
            let remote = remote.clone();
            let action = Action::Health {
                alert,
                updates: updates.clone(),
            };
            async move {
                let mut row = health_one(&remote, &vm, deadline, timeout, restart, &action).await;
                if with_id {
                    row.resource_id = Some(vm.id.clone());
                }
                row
            }
        },
        move |vm, t| {
            let mut row = VmHealth::new(&vm.name, &vm.resource_group(), transport.as_str());
            row.location = Some(vm.location.clone());
            if with_id {
                row.resource_id = Some(vm.id.clone());
            }
            row.fail(
                Status::Unknown,
                "timeout",
                format!(
                    "unreachable: no answer within {}",
                    humantime::format_duration(t)
                ),
            );
            row.duration_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
            row
        },
    )
    .await
}

async fn health_one(
    remote: &Remote,
    vm: &VirtualMachine,
    deadline: Instant,
    timeout: Duration,
    restart: bool,
    health: &Action,
) -> VmHealth {
    let start = Instant::now();
    let mut row = VmHealth::new(&vm.name, &vm.resource_group(), remote.transport.as_str());
    row.location = Some(vm.location.clone());
    check(remote, vm, deadline, timeout, restart, health, &mut row).await;
    row.duration_ms = fleet::elapsed_ms(start);
    row
}

#[allow(clippy::too_many_arguments)]
async fn check(
    remote: &Remote,
    vm: &VirtualMachine,
    deadline: Instant,
    timeout: Duration,
    restart: bool,
    health: &Action,
    row: &mut VmHealth,
) {
    let iv = match remote.arm.instance_view(&vm.id, deadline).await {
        Ok(iv) => iv,
        Err(e) => {
            return row.fail(
                Status::Unknown,
                "arm",
                format!("cannot read the instance view: {e}"),
            );
        }
    };
    match iv.power_state() {
        None => {
            return row.fail(
                Status::Unknown,
                "arm",
                "the instance view has no power state".into(),
            );
        }
        Some(p) => {
            row.power_state = Some(p.code.clone());
            if !p.is_running() {
                return row.fail(
                    Status::Critical,
                    "not-running",
                    format!("VM is not running: {}", p.display),
                );
            }
        }
    }
    if remote.transport == TransportKind::RunCommand
        && let GuestAgent::NotReady(why) = iv.guest_agent()
    {
        return row.fail(
            Status::Unknown,
            "unreachable",
            format!("unreachable: the Azure guest agent is not ready ({why})"),
        );
    }
    match remote.run(vm, health, deadline).await {
        Ok(frame) => {
            row.apply_frame(&frame);
            row.apply_updates(&frame);
        }
        Err(e) if e.is_timeout() => {
            return row.fail(
                Status::Unknown,
                "timeout",
                format!(
                    "unreachable: no answer within {}",
                    humantime::format_duration(timeout)
                ),
            );
        }
        Err(e) => {
            return row.fail(Status::Unknown, "unreachable", format!("unreachable: {e}"));
        }
    }
    if restart && row.service_down() {
        let before = row.reason.clone().unwrap_or_default();
        match remote
            .run(vm, &Action::Restart { force: false }, deadline)
            .await
        {
            Ok(frame) => {
                let via = frame.get("restart_via").map(str::to_owned);
                let code = frame.number("restart_code");
                let text = frame
                    .blob("restart_output")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let ok = code == Some(0);
                row.warnings.clear();
                row.apply_frame(&frame);
                if via.as_deref() == Some("systemctl") {
                    row.warnings
                        .push("restarted with systemctl restart instead of the agent".into());
                }
                row.actions.push(ActionTaken {
                    action: "restart",
                    via,
                    exit_code: code,
                    ok,
                    message: last_line(&text).unwrap_or_default().to_owned(),
                });
                let note = if ok { "restarted" } else { "restart failed" };
                row.reason = Some(match row.reason.take() {
                    Some(r) => format!("{note}; now: {r} (was: {before})"),
                    None => format!("{note} (was: {before})"),
                });
            }
            Err(e) => row.actions.push(ActionTaken {
                action: "restart",
                via: None,
                exit_code: None,
                ok: false,
                message: format!("unreachable: {e}"),
            }),
        }
    }
}

fn table(rows: &[VmHealth], with_age: bool) -> comfy_table::Table {
    let mut header = vec![
        "VM",
        "RESOURCE GROUP",
        "POWER",
        "STATUS",
        "SERVICE",
        "DISK",
        "MEMORY",
        "HEARTBEAT",
        "RESTARTS",
    ];
    if with_age {
        header.push("DATA AGE");
    }
    header.push("FIRST ALERT");
    let mut t = output::table(&header);
    for r in rows {
        let mut cells = vec![
            r.vm.clone(),
            r.resource_group.clone(),
            or_dash(r.power_state.as_deref()),
            r.status.as_str().to_owned(),
            or_dash(r.service.as_deref()),
            or_dash(r.disk_usage_percent.map(|p| format!("{p}%"))),
            or_dash(r.memory_usage_percent.map(|p| format!("{p}%"))),
            match r.heartbeat_age_seconds {
                Some(-1) => "none".to_owned(),
                Some(s) => {
                    humantime::format_duration(Duration::from_secs(s.max(0) as u64)).to_string()
                }
                None => "-".to_owned(),
            },
            or_dash(r.restarts),
        ];
        if with_age {
            cells.push(match (r.source, r.data_age_seconds) {
                (Some("agent"), _) => "live".to_owned(),
                (_, Some(Some(s))) => join::age_text(s),
                _ => "-".to_owned(),
            });
        }
        cells.push(output::shorten(r.reason.as_deref().unwrap_or("-"), 90));
        t.add_row(cells);
    }
    t
}

/// `5 VMs: 1 HEALTHY, 0 WARNING, 2 CRITICAL, 2 UNKNOWN`.
fn summary(rows: &[VmHealth]) -> String {
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    format!(
        "{} VM{}: {} HEALTHY, {} WARNING, {} CRITICAL, {} UNKNOWN",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        count(Status::Healthy),
        count(Status::Warning),
        count(Status::Critical),
        count(Status::Unknown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_every_status() {
        let mut a = VmHealth::new("a", "rg", "ssh");
        a.status = Status::Healthy;
        let mut b = VmHealth::new("b", "rg", "ssh");
        b.fail(
            Status::Critical,
            "not-running",
            "VM is not running: VM deallocated".into(),
        );
        assert_eq!(
            summary(&[a.clone(), b.clone()]),
            "2 VMs: 1 HEALTHY, 0 WARNING, 1 CRITICAL, 0 UNKNOWN"
        );
        let text = table(&[a.clone(), b.clone()], false).to_string();
        assert!(text.contains("VM is not running: VM deallocated"), "{text}");
        assert!(!text.contains("DATA AGE"), "{text}");
        let mut a = a;
        a.data_age_seconds = Some(Some(840));
        let text = table(&[a, b], true).to_string();
        assert!(
            text.contains("DATA AGE") && text.contains("14 min"),
            "{text}"
        );
    }
}
