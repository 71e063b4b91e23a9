//! Benchmark 7: fleet health at scale. `cryptoctl health --all --source telemetry` over synthetic
//! fleets of 1,000 and 10,000 VMs in 20 subscriptions of the emulator (Resource Graph for the
//! inventory, one Application Insights query for the health): wall time and requests by kind.
//! Beside it, the same number of VMs over run-command (`health --all`, the default concurrency,
//! run-commands of 2 s as in benchmark 5) in one subscription, the only way before.

use super::*;
use cryptobot_tests::{
    azure_emulator::{
        Seen,
        fleet::{FleetSpec, fleet_subscription},
    },
    ctl::telemetry_health,
};

/// Requests by kind: (token, Resource Graph, query API, other Resource Manager, of them 429).
type Kinds = (usize, usize, usize, usize, usize);

fn kinds(seen: &[Seen]) -> Kinds {
    let mut k = (0, 0, 0, 0, 0);
    for s in seen {
        if s.uri.ends_with("/oauth2/v2.0/token") {
            k.0 += 1;
        } else if s.uri.starts_with("/providers/Microsoft.ResourceGraph/") {
            k.1 += 1;
        } else if s.uri.starts_with("/v1/") {
            k.2 += 1;
        } else {
            k.3 += 1;
        }
        if s.status == 429 {
            k.4 += 1;
        }
    }
    k
}

fn telemetry_run(n: usize) -> Result<(f64, usize, usize, Kinds)> {
    let emu = AzureEmulator::builder().start();
    let fleet = emu.add_fleet(&FleetSpec::new(n, 20));
    let subs: Vec<String> = (0..20).map(fleet_subscription).collect();
    let mut args = telemetry_health(&["--output", "json"]);
    for s in &subs {
        args.extend(["--subscription", s.as_str()]);
    }
    let t = Instant::now();
    let out = cryptoctl(&emu)
        .env("CRYPTOCTL_QUERY_ENDPOINT", emu.endpoint())
        .args(&args)
        .output()?;
    let wall = t.elapsed().as_secs_f64();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("cryptoctl output: {}", String::from_utf8_lossy(&out.stderr)))?;
    let rows = v.as_array().map_or(0, Vec::len);
    // every row as the fleet says it should be
    let right = fleet
        .iter()
        .filter(|vm| {
            v.as_array().into_iter().flatten().any(|r| {
                r["resource_id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&vm.id))
                    && r["status"] == vm.status
            })
        })
        .count();
    Ok((wall, rows, right, kinds(&emu.seen())))
}

fn run_command_run(n: usize) -> Result<(f64, usize, Kinds)> {
    let mut b = AzureEmulator::builder()
        .faults(Faults {
            synthetic_run_time: Duration::from_secs(2),
            ..Faults::default()
        })
        // a budget that never runs low: the comparison is with the default concurrency
        .budget(10_000_000);
    for i in 0..n {
        b = b.vm(EmulatedVm::synthetic(&format!("rc{i:05}"), "BENCH-RG"));
    }
    let emu = b.start();
    let (wall, healthy) = fleet::time_health(&emu, &[])?;
    Ok((wall, healthy, kinds(&emu.seen())))
}

pub(super) fn bench_telemetry(o: &Opts, md: &mut String) -> Result<()> {
    let mut rows = String::new();
    let mut at10k = f64::NAN;
    let mut pages10k = 0;
    let mut queries10k = 0;
    for n in [1_000usize, 10_000] {
        let (wall, got, right, (tok, graph, query, other, throttled)) = telemetry_run(n)?;
        println!(
            "telemetry, {n} VMs: {wall:.2} s, {got} rows ({right} right), {tok} token, {graph} Resource Graph, {query} query, {other} other ARM, {throttled} 429s"
        );
        if n == 10_000 {
            at10k = wall;
            pages10k = graph;
            queries10k = query;
        }
        let _ = writeln!(
            rows,
            "| {n} | telemetry (Resource Graph + query) | 16 | {wall:.2} | {right}/{got} | {tok} | {graph} | {query} | {other} | {throttled} |"
        );
    }
    // every size measured (a 10,000-VM run takes about 21 minutes); --quick: 200 VMs only
    let sizes: &[usize] = if o.quick { &[200] } else { &[1_000, 10_000] };
    for &n in sizes {
        let (wall, healthy, (tok, graph, query, other, throttled)) = run_command_run(n)?;
        println!(
            "run-command, {n} VMs: {wall:.2} s ({healthy} healthy), {other} ARM requests, {throttled} 429s"
        );
        let _ = writeln!(
            rows,
            "| {n} | run-command (`health --all`) | 16 | {wall:.2} | {healthy}/{n} | {tok} | {graph} | {query} | {other} | {throttled} |"
        );
    }
    let ok = at10k < 5.0 && pages10k <= 11 && queries10k == 1;
    let _ = write!(
        md,
        "### 7. Fleet health at scale: `health --all --source telemetry` vs run-command\n\n\
         Synthetic fleets of the emulator in 20 subscriptions (every 50 VMs: 43 healthy, one \
         each critical, warning, silent, deallocated, without a resource id in its telemetry, \
         and a pair of one name in two resource groups; a few telemetry sources of VMs that are \
         not listed). `--source telemetry` reads the inventory from Resource Graph (pages of \
         1000) and the health from one Application Insights query; \"right\" counts rows whose \
         status is the one the fleet was made to have. The run-command rows are `health --all` \
         over synthetic VMs whose run-command takes 2 s (as in section 5), at the default \
         concurrency, in one subscription (Resource Manager lists one subscription at a time), \
         each size measured (`--quick` runs 200 VMs only).\n\n\
         | VMs | source | --concurrency | wall s | right | token | Resource Graph | query | other ARM | 429s |\n\
         |---|---|---|---|---|---|---|---|---|---|\n{rows}\n\
         10,000 VMs in {at10k:.2} s with {pages10k} Resource Graph pages and {queries10k} query \
         (goal: under 5 s, at most 11 pages and one query: **{}**).\n\n",
        goal(ok)
    );
    Ok(())
}
