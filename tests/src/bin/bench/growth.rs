//! Benchmark 6a (agent side): how the agent's CPU per check cycle grows with the number of watched
//! mount points and with the number of other units changing state.

use super::*;

/// Both cost-growth tables, each over a number of 1 s cycles.
pub(super) fn bench_growth(o: &Opts, vm: &Vm, md: &mut String) -> Result<()> {
    let secs = if o.quick { 20 } else { 60 };
    growth_by_mounts(vm, secs, md)?;
    growth_by_units(vm, secs, md)
}

/// The agent watching 1, 10 and 50 mount points.
fn growth_by_mounts(vm: &Vm, secs: u64, md: &mut String) -> Result<()> {
    vm.sh("for i in $(seq 1 49); do mkdir -p /srv/bench/m$i && mount -t tmpfs -o size=1m tmpfs /srv/bench/m$i; done");
    let mut rows = String::new();
    let mut per = Vec::new();
    for n in [1usize, 10, 50] {
        let mounts: Vec<String> = std::iter::once("\"/\"".to_owned())
            .chain((1..n).map(|i| format!("\"/srv/bench/m{i}\"")))
            .collect();
        let cfg = format!(
            "[daemon]\ninterval = \"1s\"\n[disk]\nmounts = [{}]\n[restart]\nenabled = false\n",
            mounts.join(", ")
        );
        vm.write_file(cryptobot_tests::agent::AGENT_CONFIG, cfg);
        vm.systemctl(&format!("restart {AGENT_UNIT}"));
        vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
        let (ms, rss) = agent_cpu_per_cycle(vm, secs)?;
        println!("{n} mounts: {ms:.2} ms CPU per cycle, RSS {rss} KiB");
        growth_row(&mut rows, &mut per, n, ms, rss);
    }
    let _ = write!(
        md,
        "### 6a. Agent CPU per check cycle by number of watched mount points ({secs} cycles at 1 s)\n\n\
         | mounts | CPU ms per cycle | vs 1 mount | RSS |\n|---|---|---|---|\n{rows}\n\
         (CPU time from 10 ms ticks over {secs} s; each cycle also reads memory, the heartbeat \
         file and the journal.)\n\n"
    );
    Ok(())
}

/// The agent watching one worker while 1, 10 and 50 other units restart.
fn growth_by_units(vm: &Vm, secs: u64, md: &mut String) -> Result<()> {
    // Units: the agent watches one worker, but every unit of the VM may change state. N
    // other services restarting every 2 s show whether the D-Bus match rules keep the
    // others' signals away from the agent.
    vm.write_file(
        cryptobot_tests::agent::AGENT_CONFIG,
        "[daemon]\ninterval = \"1s\"\n[restart]\nenabled = false\n",
    );
    vm.systemctl(&format!("restart {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
    let mut rows = String::new();
    let mut per = Vec::new();
    let mut started_units = 0usize;
    for n in [1usize, 10, 50] {
        while started_units < n {
            started_units += 1;
            vm.sh(&format!(
                "systemd-run --unit bench-churn{started_units} -p Restart=always \
                 -p RestartSec=1 -p StartLimitIntervalSec=0 /bin/sleep 1"
            ));
        }
        let (ms, rss) = agent_cpu_per_cycle(vm, secs)?;
        println!("{n} churning units: {ms:.2} ms CPU per cycle, RSS {rss} KiB");
        growth_row(&mut rows, &mut per, n, ms, rss);
    }
    let _ = vm.run(&["sh", "-c", "systemctl stop 'bench-churn*'"]);
    let _ = write!(
        md,
        "### 6a'. Agent CPU per check cycle by number of other units changing state \
         ({secs} cycles at 1 s)\n\n\
         The agent watches one worker; N other services each restart every 2 s.\n\n\
         | other units | CPU ms per cycle | vs 1 unit | RSS |\n|---|---|---|---|\n{rows}\n"
    );
    Ok(())
}

/// The agent's CPU time per second (one check cycle at the 1 s interval) over `secs` seconds,
/// after 3 s to settle, and its RSS at the end (KiB).
fn agent_cpu_per_cycle(vm: &Vm, secs: u64) -> Result<(f64, u64)> {
    std::thread::sleep(Duration::from_secs(3));
    let pid = main_pid(vm, AGENT_UNIT)?;
    let (c0, _) = proc_usage(vm, pid)?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, rss) = proc_usage(vm, pid)?;
    Ok(((c1 - c0) * 1000.0 / t.elapsed().as_secs_f64(), rss))
}

/// One row of a cost-growth table; `per` keeps the figures so far (the first is the baseline).
fn growth_row(rows: &mut String, per: &mut Vec<f64>, n: usize, ms: f64, rss: u64) {
    per.push(ms);
    let _ = writeln!(
        rows,
        "| {n} | {ms:.2} | {:.2}× | {:.1} MiB |",
        ms / per[0].max(0.01),
        rss as f64 / 1024.0
    );
}
