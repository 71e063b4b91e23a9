//! Benchmark 4: start-up time of the agent's `Type=notify` unit, from systemd's own timestamps
//! (main process started to READY=1).

use super::*;

fn unit_us(vm: &Vm, unit: &str, prop: &str) -> Result<u64> {
    vm.unit_property(unit, prop)
        .parse()
        .with_context(|| format!("{prop} of {unit}"))
}

/// Restarts the agent of `vm` several times and reports how long each took to be ready.
pub(super) fn bench_startup(o: &Opts, vm: &Vm, md: &mut String) -> Result<()> {
    let runs = if o.quick { 5 } else { 20 };
    let mut v = Vec::new();
    for _ in 0..runs {
        vm.systemctl(&format!("restart {AGENT_UNIT}"));
        vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
        let start = unit_us(vm, AGENT_UNIT, "ExecMainStartTimestampMonotonic")?;
        let ready = unit_us(vm, AGENT_UNIT, "ActiveEnterTimestampMonotonic")?;
        v.push(ready.saturating_sub(start) as f64 / 1000.0);
    }
    println!("start-up (ms): {v:?}");
    let _ = write!(
        md,
        "### 4. Start-up ({runs} restarts of the agent's `Type=notify` unit in a lab VM)\n\n\
         systemd's `ExecMainStartTimestampMonotonic` → `ActiveEnterTimestampMonotonic` (READY=1): \
         p50 **{:.1} ms**, max {:.1} ms. Goal < 50 ms: **{}**.\n\n",
        pct(&v, 50.0),
        pct(&v, 100.0),
        goal(pct(&v, 50.0) < 50.0)
    );
    Ok(())
}
