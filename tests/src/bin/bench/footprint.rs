//! Benchmark 3: memory and CPU footprint of the agent over minutes, against the Prometheus node
//! exporter in the same VM.

use super::*;

/// Measures the agent of `vm` and a node exporter side by side while the worker crashes now and
/// then.
pub(super) fn bench_footprint(o: &Opts, vm: &Vm, md: &mut String) -> Result<()> {
    let secs = if o.quick { 60 } else { 600 };
    vm.sh(
        "systemd-run --unit bench-node-exporter /usr/bin/prometheus-node-exporter \
         --web.listen-address=127.0.0.1:9100",
    );
    std::thread::sleep(Duration::from_secs(2));
    vm.systemctl(&format!("restart {AGENT_UNIT}"));
    vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let a_pid = main_pid(vm, AGENT_UNIT)?;
    let n_pid = main_pid(vm, "bench-node-exporter.service")?;
    let (a0, _) = proc_usage(vm, a_pid)?;
    let (n0, _) = proc_usage(vm, n_pid)?;
    let started = Instant::now();
    let (mut a_rss, mut n_rss) = (0u64, 0u64);
    let (mut a_anon, mut a_file) = (0u64, 0u64);
    let mut crashes = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        // every 2 minutes the worker crashes (systemd restarts it): the notification sinks
        // get a problem and its resolution, not only the telemetry of every check
        if started.elapsed().as_secs() >= 120 * u64::from(crashes + 1) {
            crashes += 1;
            let _ = vm.run(&["systemctl", "kill", "-s", "KILL", WORKER]);
        }
        // scraped every 10 s, as Prometheus would
        let _ = vm.run(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "http://127.0.0.1:9100/metrics",
        ]);
        a_rss = a_rss.max(proc_usage(vm, a_pid)?.1);
        n_rss = n_rss.max(proc_usage(vm, n_pid)?.1);
        let (anon, file) = proc_rss_split(vm, a_pid)?;
        a_anon = a_anon.max(anon);
        a_file = a_file.max(file);
        std::thread::sleep(Duration::from_secs(10));
    }
    let wall = started.elapsed().as_secs_f64();
    let (a1, a_rss_end) = proc_usage(vm, a_pid)?;
    let (n1, n_rss_end) = proc_usage(vm, n_pid)?;
    let a_cpu = (a1 - a0) / wall * 100.0;
    let n_cpu = (n1 - n0) / wall * 100.0;
    let _ = vm.run(&["systemctl", "stop", "bench-node-exporter"]);
    println!(
        "agent: max RSS {a_rss} KiB (end {a_rss_end}), CPU {a_cpu:.3}% of a core; \
         node exporter: max RSS {n_rss} KiB (end {n_rss_end}), CPU {n_cpu:.3}%"
    );
    let _ = write!(
        md,
        "### 3. Footprint over {secs} s (agent: every check and every sink (webhook, SMTP, Application \
         Insights) every 10 s, the worker killed every 2 minutes; node exporter scraped every 10 s)\n\n\
         | process | max RSS | CPU time | share of a core |\n|---|---|---|---|\n\
         | `cryptobot-agent run` | {:.1} MiB | {:.2} s | {a_cpu:.3} % |\n\
         | `prometheus-node-exporter` (baseline) | {:.1} MiB | {:.2} s | {n_cpu:.3} % |\n\n\
         Agent / node exporter: RSS {:.2}×, CPU {:.2}×. Goals < 10 MB RSS: **{}**, < 0.1 % of a \
         core: **{}**. (CPU from `/proc/PID/stat` utime+stime, 10 ms ticks.) Of the agent's \
         resident memory, at most {:.1} MiB was anonymous (its heap and stacks) and at most \
         {:.1} MiB file-backed (its binary's and libc's pages, shared and reclaimable).\n\n",
        a_rss as f64 / 1024.0,
        a1 - a0,
        n_rss as f64 / 1024.0,
        n1 - n0,
        a_rss as f64 / n_rss.max(1) as f64,
        (a1 - a0) / (n1 - n0).max(0.01),
        goal((a_rss as f64) * 1024.0 < 10e6),
        goal(a_cpu < 0.1),
        a_anon as f64 / 1024.0,
        a_file as f64 / 1024.0
    );
    Ok(())
}
