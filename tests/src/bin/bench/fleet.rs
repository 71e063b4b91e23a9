//! Benchmarks 5 and 6 (fleet side): `cryptoctl health` over synthetic fleets of the emulator and
//! over ssh.

use super::*;

pub(super) fn time_health(emu: &AzureEmulator, extra: &[&str]) -> Result<(f64, usize)> {
    let t = Instant::now();
    let out = cryptoctl(emu)
        .args(["health", "--all", "--output", "json"])
        .args(extra)
        .output()?;
    let wall = t.elapsed().as_secs_f64();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "cryptoctl output: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let healthy = v
        .as_array()
        .map(|a| a.iter().filter(|r| r["status"] == "HEALTHY").count())
        .unwrap_or(0);
    Ok((wall, healthy))
}

pub(super) fn bench_fleet(o: &Opts, md: &mut String) -> Result<()> {
    let _ = o;
    let faults = Faults {
        synthetic_run_time: Duration::from_secs(2),
        ..Faults::default()
    };
    let mut rows = String::new();
    let mut single = 0.0;
    let mut at200 = Vec::new();
    for n in [1usize, 10, 50, 200] {
        for conc in ["16", "200"] {
            if n == 1 && conc == "200" {
                continue;
            }
            let mut b = AzureEmulator::builder().faults(faults.clone());
            for i in 0..n {
                b = b.vm(EmulatedVm::synthetic(&format!("bench{i:03}"), "BENCH-RG"));
            }
            let emu = b.start();
            let (wall, healthy) = time_health(&emu, &["--concurrency", conc])?;
            let seen = emu.seen();
            let throttled = seen.iter().filter(|s| s.status == 429).count();
            if n == 1 {
                single = wall;
            }
            if n == 200 {
                at200.push((conc, wall));
            }
            println!(
                "{n} VMs, --concurrency {conc}: {wall:.2} s ({healthy} healthy), {} requests, {throttled} throttled",
                seen.len()
            );
            let _ = writeln!(
                rows,
                "| {n} | {conc} | {wall:.2} | {:.2}× | {healthy} | {} | {throttled} |",
                wall / single,
                seen.len()
            );
        }
    }
    // over ssh against lab VMs
    let lab = LabBuilder::default().vms(3).ssh(true).start();
    let mut b = AzureEmulator::builder();
    for (i, vm) in lab.vms().iter().enumerate() {
        vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
        start_agent(vm, "", 30);
        b = b.vm(EmulatedVm::lab(&format!("LabVm{}", i + 1), "LAB-RG", vm));
    }
    let emu = b.start();
    let ssh = ssh_args(&lab);
    let ssh: Vec<&str> = ssh.iter().map(String::as_str).collect();
    let mut ssh_rows = String::new();
    let mut one = 0.0;
    for (label, sel) in [
        ("1", vec!["-g", "LAB-RG", "-n", "LabVm1"]),
        ("3", vec!["-g", "LAB-RG"]),
    ] {
        let t = Instant::now();
        let out = cryptoctl(&emu)
            .args(&ssh)
            .arg("health")
            .args(&sel)
            .args(["--output", "json"])
            .output()?;
        let wall = t.elapsed().as_secs_f64();
        let healthy = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map(|a| a.iter().filter(|r| r["status"] == "HEALTHY").count())
            .unwrap_or(0);
        if label == "1" {
            one = wall;
        }
        println!("ssh, {label} lab VMs: {wall:.2} s ({healthy} healthy)");
        let _ = writeln!(
            ssh_rows,
            "| {label} | {wall:.2} | {:.2}× | {healthy} |",
            wall / one
        );
    }
    drop(emu);
    drop(lab);
    let best = at200.iter().map(|(_, w)| *w).fold(f64::INFINITY, f64::min);
    let _ = write!(
        md,
        "### 5. and 6b. Fleet fan-out: `cryptoctl health --all` over the Azure emulator\n\n\
         Synthetic VMs whose run-command takes 2 s; cryptoctl polls every 200 ms. Requests counted \
         by the emulator; the budget in its throttling headers starts at 3999 per run.\n\n\
         | VMs | --concurrency | wall s | vs 1 VM | healthy | ARM requests | 429s |\n|---|---|---|---|---|---|---|\n{rows}\n\
         200 VMs in {:.2}× the single-VM time at best (goal < 3×: **{}**); at the default \
         concurrency (16) {:.2}×.\n\n\
         Over ssh (`--transport ssh`) against lab VMs running the agent:\n\n\
         | VMs | wall s | vs 1 VM | healthy |\n|---|---|---|---|\n{ssh_rows}\n",
        best / single,
        goal(best / single < 3.0),
        at200
            .iter()
            .find(|(c, _)| *c == "16")
            .map(|(_, w)| w / single)
            .unwrap_or(f64::NAN)
    );
    Ok(())
}
