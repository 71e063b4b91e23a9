//! Benchmark 1: crash detection, against systemd's own D-Bus signal and monit.

use super::*;

pub(super) fn bench_crash(o: &Opts, md: &mut String) -> Result<()> {
    let kills = if o.quick { 10 } else { 50 };
    let lab = Lab::start(1);
    let vm = lab.vm(1).clone();
    vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    // the worker stays down after a kill, so every observer (monit's 1 s cycle too) can see it;
    // the benchmark starts it again
    worker_without_restart(&vm);
    start_agent(
        &vm,
        "[daemon]\ninterval = \"1m\"\n[restart]\nenabled = false\n[alerts]\nenabled = false\n",
        30,
    );
    // floor: systemd's own PropertiesChanged signals for the unit, seen on the VM's bus
    let mut dbus = Reaped(
        vm.command("stdbuf")
            .args([
                "-oL",
                "dbus-monitor",
                "--system",
                "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path='/org/freedesktop/systemd1/unit/faucet_5fworker_2eservice'",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let dbus_lines = collect_lines(&mut dbus.0);
    // monit at its shortest cycle, recording the moment its action runs
    vm.write_file(
        "/usr/local/bin/bench-monit-event",
        "#!/bin/sh\ndate +%s%6N >> /run/bench-monit-events\n",
    );
    vm.write_file(
        "/etc/bench-monitrc",
        "set daemon 1\nset log /run/bench-monit.log\nset pidfile /run/bench-monit.pid\n\
         set idfile /run/bench-monit.id\nset statefile /run/bench-monit.state\n\
         check program faucet_worker with path \"/bin/systemctl is-active faucet_worker\"\n\
         \x20 if status != 0 then exec \"/usr/local/bin/bench-monit-event\"\n",
    );
    vm.sh(
        "chmod 755 /usr/local/bin/bench-monit-event && chmod 600 /etc/bench-monitrc && \
           systemd-run --unit bench-monit /usr/bin/monit -I -c /etc/bench-monitrc",
    );
    // /health from the lab network, in a tight loop
    let mut http = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &vm.switch_netns])
            .arg(std::env::current_exe()?)
            .args(["probe-http", &format!("{}:8080", vm.ip), "3600"])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let http_lines = collect_lines(&mut http.0);
    // WatchStatus over the unix socket, from the host
    let grpc: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let socket = vm.run_dir.join("cryptobot-agent/agent.sock");
    let g = grpc.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let watch = rt.spawn(async move {
        // reconnects if the stream ends (a call deadline), for at most an hour
        let deadline = Instant::now() + Duration::from_secs(3600);
        while Instant::now() < deadline {
            let Ok(channel) = cryptobot_agent::client::unix_channel(&socket).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut client = AgentClient::new(channel);
            let Ok(stream) = client.watch_status(WatchStatusRequest {}).await else {
                continue;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(s)) = stream.message().await {
                let t = epoch_us();
                g.lock()
                    .expect("grpc")
                    .push((t, s.status() == HealthStatus::Healthy));
            }
        }
    });
    let monit_events = || -> Vec<u64> {
        std::fs::read_to_string(vm.run_dir.join("bench-monit-events"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let first_http = |after: u64, code: &str| {
        http_lines
            .lock()
            .expect("http")
            .iter()
            .find(|(_, l)| {
                l.split_once(' ')
                    .is_some_and(|(t, c)| c == code && t.parse::<u64>().is_ok_and(|t| t > after))
            })
            .and_then(|(_, l)| l.split_once(' ')?.0.parse::<u64>().ok())
    };
    let first_grpc = |after: u64, healthy: bool| {
        grpc.lock()
            .expect("grpc")
            .iter()
            .find(|(t, h)| *t > after && *h == healthy)
            .map(|(t, _)| *t)
    };
    let first_dbus = |after: u64| {
        dbus_lines
            .lock()
            .expect("dbus")
            .iter()
            .filter(|(_, l)| l.starts_with("signal time="))
            .filter_map(|(_, l)| {
                let t = l.strip_prefix("signal time=")?.split_whitespace().next()?;
                let (s, f) = t.split_once('.')?;
                Some(s.parse::<u64>().ok()? * 1_000_000 + f.parse::<u64>().ok()?)
            })
            .find(|t| *t > after)
    };
    wait_for(
        "a healthy /health and WatchStatus",
        Duration::from_secs(20),
        || first_http(0, "200").is_some() && first_grpc(0, true).is_some(),
    )?;
    std::thread::sleep(Duration::from_secs(3)); // monit's first cycles
    let (mut d_dbus, mut d_http, mut d_grpc, mut d_monit) = (vec![], vec![], vec![], vec![]);
    let (mut x_http, mut x_grpc) = (vec![], vec![]);
    let mut misses = Vec::new();
    for i in 0..kills {
        let pid = host_pid(&vm, main_pid(&vm, WORKER)?)?;
        let t0 = epoch_us();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).context("pid")?,
            rustix::process::Signal::KILL,
        )?;
        let _ = wait_for("every observer", Duration::from_secs(4), || {
            first_dbus(t0).is_some()
                && first_http(t0, "503").is_some()
                && first_grpc(t0, false).is_some()
                && monit_events().iter().any(|t| *t > t0)
        });
        let ms = |t: Option<u64>| t.map(|t| (t.saturating_sub(t0)) as f64 / 1000.0);
        let db = ms(first_dbus(t0));
        let ht = ms(first_http(t0, "503"));
        let gr = ms(first_grpc(t0, false));
        let mo = ms(monit_events().into_iter().find(|t| *t > t0));
        for (v, x, name) in [
            (&mut d_dbus, db, "dbus"),
            (&mut d_http, ht, "http"),
            (&mut d_grpc, gr, "grpc"),
            (&mut d_monit, mo, "monit"),
        ] {
            match x {
                Some(x) => v.push(x),
                None => misses.push(format!("kill {i}: {name}")),
            }
        }
        if let (Some(db), Some(ht)) = (db, ht) {
            x_http.push(ht - db);
        }
        if let (Some(db), Some(gr)) = (db, gr) {
            x_grpc.push(gr - db);
        }
        println!(
            "kill {i:2}: dbus {db:?} ms, /health 503 {ht:?} ms, WatchStatus {gr:?} ms, monit {mo:?} ms"
        );
        // bring the worker back and let every observer see it healthy again
        let t1 = epoch_us();
        vm.systemctl("start faucet_worker");
        wait_for("recovery", Duration::from_secs(10), || {
            first_http(t1, "200").is_some() && first_grpc(t1, true).is_some()
        })?;
        std::thread::sleep(Duration::from_millis(2500)); // monit sees it up (two cycles)
    }
    watch.abort();
    drop(http);
    drop(dbus);
    let _ = vm.run(&["systemctl", "stop", "bench-monit"]);
    let row = |name: &str, v: &[f64]| {
        format!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |\n",
            v.len(),
            pct(v, 50.0),
            pct(v, 99.0),
            pct(v, 100.0)
        )
    };
    let mut t =
        String::from("| observer | samples | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n");
    t += &row("systemd PropertiesChanged on D-Bus (floor)", &d_dbus);
    t += &row("agent `/health` answers 503", &d_http);
    t += &row("agent `WatchStatus` update (unix socket)", &d_grpc);
    t += &row("monit, 1 s cycle (`check program`)", &d_monit);
    t += &row("`/health` minus D-Bus, per kill", &x_http);
    t += &row("`WatchStatus` minus D-Bus, per kill", &x_grpc);
    let ratio = |a: &[f64], b: &[f64]| pct(a, 99.0) / pct(b, 99.0);
    let ok = pct(&x_http, 99.0) <= 50.0 && pct(&x_grpc, 99.0) <= 50.0;
    println!("{t}");
    println!(
        "p99 ratio to the D-Bus floor: /health {:.2}x, WatchStatus {:.2}x, monit {:.2}x; monit/agent(/health) p50 {:.1}x",
        ratio(&d_http, &d_dbus),
        ratio(&d_grpc, &d_dbus),
        ratio(&d_monit, &d_dbus),
        pct(&d_monit, 50.0) / pct(&d_http, 50.0)
    );
    let _ = write!(
        md,
        "### 1. Crash detection latency ({kills} SIGKILLs of the worker's main process)\n\n\
         Time from the `kill` system call (on the host) to each observer. The worker is `Restart=no` \
         for this benchmark so that monit's 1 s cycle can see every crash; it is started again \
         after each sample.\n\n{t}\n\
         p99 ratio to the D-Bus floor: `/health` {:.2}×, `WatchStatus` {:.2}×, monit {:.2}×. \
         Goal (agent p99 within 50 ms of systemd's signal): **{}** (p99 of the per-kill gap: \
         `/health` {:.1} ms, `WatchStatus` {:.1} ms).{}\n\n",
        ratio(&d_http, &d_dbus),
        ratio(&d_grpc, &d_dbus),
        ratio(&d_monit, &d_dbus),
        goal(ok),
        pct(&x_http, 99.0),
        pct(&x_grpc, 99.0),
        if misses.is_empty() {
            String::new()
        } else {
            format!(" Not observed within 4 s: {}.", misses.join(", "))
        }
    );
    drop(rt);
    drop(lab);
    Ok(())
}
