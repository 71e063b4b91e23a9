//! Benchmarks 3, 4 and 6 (agent side): footprint, start-up and cost growth of the agent in one
//! lab VM with every check and sink on.

use super::*;

pub(super) fn unit_us(vm: &Vm, unit: &str, prop: &str) -> Result<u64> {
    vm.unit_property(unit, prop)
        .parse()
        .with_context(|| format!("{prop} of {unit}"))
}

pub(super) fn bench_startup_footprint_growth(o: &Opts, md: &mut String) -> Result<()> {
    let lab = LabBuilder::default().vms(1).start();
    let vm = lab.vm(1).clone();
    vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    vm.write_file(
        "/tmp/cryptobot_heartbeat",
        format!("{}\n", epoch_us() / 1_000_000),
    );
    // Every check and every sink on, every 10 s. The sinks deliver inside the VM: a webhook
    // receiver that also answers as the Application Insights ingestion endpoint, and aiosmtpd.
    let _receiver = Reaped(
        vm.command("python3")
            .args(["/usr/local/lib/cryptobot-lab/webhook-receiver.py", "9999"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let _smtp = Reaped(
        vm.command("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:2525"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let config = "[daemon]\ninterval = \"10s\"\n\
        [[alerts.webhook]]\nkind = \"generic\"\nurl = \"http://127.0.0.1:9999/hook\"\n\
        [alerts.email]\nto = [\"ops@example.com\"]\nfrom = \"agent@example.com\"\n\
        host = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n\
        [alerts.appinsights]\nconnection_string = \"InstrumentationKey=11111111-2222-3333-4444-555555555555;\
        IngestionEndpoint=http://127.0.0.1:9999/\"\ninterval = \"10s\"\n";
    start_agent(&vm, config, 30);
    // the benchmark restarts the agent more often than its unit's start limit allows
    vm.write_file(
        "/etc/systemd/system/cryptobot-agent.service.d/bench.conf",
        "[Unit]\nStartLimitIntervalSec=0\n",
    );
    vm.systemctl("daemon-reload");
    if o.wants("startup") {
        let runs = if o.quick { 5 } else { 20 };
        let mut v = Vec::new();
        for _ in 0..runs {
            vm.systemctl(&format!("restart {AGENT_UNIT}"));
            vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
            let start = unit_us(&vm, AGENT_UNIT, "ExecMainStartTimestampMonotonic")?;
            let ready = unit_us(&vm, AGENT_UNIT, "ActiveEnterTimestampMonotonic")?;
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
    }
    if o.wants("footprint") {
        let secs = if o.quick { 60 } else { 600 };
        vm.sh(
            "systemd-run --unit bench-node-exporter /usr/bin/prometheus-node-exporter \
             --web.listen-address=127.0.0.1:9100",
        );
        std::thread::sleep(Duration::from_secs(2));
        vm.systemctl(&format!("restart {AGENT_UNIT}"));
        vm.wait_active_state(AGENT_UNIT, "active", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(2));
        let a_pid = main_pid(&vm, AGENT_UNIT)?;
        let n_pid = main_pid(&vm, "bench-node-exporter.service")?;
        let (a0, _) = proc_usage(&vm, a_pid)?;
        let (n0, _) = proc_usage(&vm, n_pid)?;
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
            a_rss = a_rss.max(proc_usage(&vm, a_pid)?.1);
            n_rss = n_rss.max(proc_usage(&vm, n_pid)?.1);
            let (anon, file) = proc_rss_split(&vm, a_pid)?;
            a_anon = a_anon.max(anon);
            a_file = a_file.max(file);
            std::thread::sleep(Duration::from_secs(10));
        }
        let wall = started.elapsed().as_secs_f64();
        let (a1, a_rss_end) = proc_usage(&vm, a_pid)?;
        let (n1, n_rss_end) = proc_usage(&vm, n_pid)?;
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
    }
    if o.wants("growth") {
        let secs = if o.quick { 20 } else { 60 };
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
            let (ms, rss) = agent_cpu_per_cycle(&vm, secs)?;
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
            let (ms, rss) = agent_cpu_per_cycle(&vm, secs)?;
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
    }
    drop(lab);
    Ok(())
}

/// The agent's CPU time per second (one check cycle at the 1 s interval) over `secs` seconds,
/// after 3 s to settle, and its RSS at the end (KiB).
pub(super) fn agent_cpu_per_cycle(vm: &Vm, secs: u64) -> Result<(f64, u64)> {
    std::thread::sleep(Duration::from_secs(3));
    let pid = main_pid(vm, AGENT_UNIT)?;
    let (c0, _) = proc_usage(vm, pid)?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, rss) = proc_usage(vm, pid)?;
    Ok(((c1 - c0) * 1000.0 / t.elapsed().as_secs_f64(), rss))
}

/// One row of a cost-growth table; `per` keeps the figures so far (the first is the baseline).
pub(super) fn growth_row(rows: &mut String, per: &mut Vec<f64>, n: usize, ms: f64, rss: u64) {
    per.push(ms);
    let _ = writeln!(
        rows,
        "| {n} | {ms:.2} | {:.2}× | {:.1} MiB |",
        ms / per[0].max(0.01),
        rss as f64 / 1024.0
    );
}

// ---------------------------------------------------------------------------------------------
// 5. and 6b. fleet fan-out
