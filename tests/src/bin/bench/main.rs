//! The benchmark suite (`tests/bench/run.sh` runs it as root after a release build). Every
//! benchmark measures its baseline in the same run and prints the figures and the ratio; the
//! results are also written as Markdown (`--results FILE`).
//!
//! ```text
//! bench [--quick] [--only crash,http,footprint,startup,fleet,growth,telemetry] [--results FILE]
//! bench probe-http ADDR SECONDS   # internal: polls ADDR/health, prints "epoch_us status" on change
//! ```

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use cryptobot_proto::v1::{HealthStatus, WatchStatusRequest, agent_client::AgentClient};
use cryptobot_tests::{
    Lab, LabBuilder, Vm,
    agent::{AGENT_UNIT, start_agent, worker_without_restart},
    agent_bin,
    azure_emulator::{AzureEmulator, EmulatedVm, Faults},
    binary,
    ctl::{cryptoctl, ssh_args},
};

mod agent_vm;
mod crash;
mod fleet;
mod footprint;
mod growth;
mod http;
mod startup;
mod telemetry;

use agent_vm::bench_agent_vm;
use crash::bench_crash;
use fleet::bench_fleet;
use footprint::bench_footprint;
use growth::bench_growth;
use http::bench_http;
use startup::bench_startup;
use telemetry::bench_telemetry;

const WORKER: &str = "faucet_worker.service";

#[derive(Debug)]
struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
    results: Option<PathBuf>,
}

impl Opts {
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe-http") {
        let addr = args.get(1).context("probe-http ADDR SECONDS")?;
        let secs: u64 = args.get(2).context("probe-http ADDR SECONDS")?.parse()?;
        return probe_http(addr, Duration::from_secs(secs));
    }
    let mut opts = Opts {
        quick: false,
        only: None,
        results: None,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--only" => {
                opts.only = Some(
                    it.next()
                        .context("--only LIST")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "--results" => opts.results = Some(it.next().context("--results FILE")?.into()),
            other => bail!("unknown argument {other}"),
        }
    }
    let mut md = String::new();
    let mode = if opts.quick { "quick" } else { "full" };
    let _ = writeln!(
        md,
        "Mode: **{mode}** (`tests/bench/run.sh{}`), {}; machine: {}.\n",
        if opts.quick { " --quick" } else { "" },
        sh_out("date -u '+%Y-%m-%d %H:%M UTC'"),
        machine()
    );
    type Bench = fn(&Opts, &mut String) -> Result<()>;
    let benches: [(&str, Bench); 5] = [
        ("crash", bench_crash),
        ("http", bench_http),
        ("startup", bench_agent_vm),
        ("fleet", bench_fleet),
        ("telemetry", bench_telemetry),
    ];
    let mut failed = Vec::new();
    for (name, f) in benches {
        let wanted = if name == "startup" {
            opts.wants("startup") || opts.wants("footprint") || opts.wants("growth")
        } else {
            opts.wants(name)
        };
        if !wanted {
            continue;
        }
        println!("\n=== {name} ===");
        let started = Instant::now();
        if let Err(e) = f(&opts, &mut md) {
            println!("{name}: FAILED: {e:#}");
            let _ = writeln!(md, "\n**{name}: the benchmark failed:** `{e:#}`\n");
            failed.push(name);
        }
        // written after each benchmark, so the figures so far survive a later failure
        if let Some(path) = &opts.results {
            std::fs::write(path, &md).with_context(|| format!("write {}", path.display()))?;
        }
        println!("({name} took {:.0?})", started.elapsed());
    }
    if let Some(path) = &opts.results {
        std::fs::write(path, &md).with_context(|| format!("write {}", path.display()))?;
        println!("\nresults written to {}", path.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("failed: {}", failed.join(", ")))
    }
}

// ---------------------------------------------------------------------------------------------
// shared functions

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn sh_out(script: &str) -> String {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    format!(
        "{} CPUs ({}), {} memory, kernel {}",
        sh_out("nproc"),
        sh_out("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"),
        sh_out("free -h | awk '/^Mem:/{print $2}'"),
        sh_out("uname -r")
    )
}

/// Nearest-rank percentile of `v` (sorted here), in the unit of `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn goal(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Host pid of the process `vm_pid` of `vm` (by the VM's pid namespace and `NSpid`).
fn host_pid(vm: &Vm, vm_pid: u32) -> Result<i32> {
    let vm_ns = std::fs::read_link(format!("/proc/{}/ns/pid", vm.pid))?;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let Some(nspid) = status.lines().find(|l| l.starts_with("NSpid:")) else {
            continue;
        };
        let ids: Vec<&str> = nspid.split_whitespace().skip(1).collect();
        if ids.len() >= 2
            && ids.last() == Some(&vm_pid.to_string().as_str())
            && std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&vm_ns)
        {
            return Ok(pid);
        }
    }
    bail!("no host pid for pid {vm_pid} of {}", vm.name)
}

fn main_pid(vm: &Vm, unit: &str) -> Result<u32> {
    let p: u32 = vm.unit_property(unit, "MainPID").parse()?;
    if p == 0 {
        bail!("{unit} has no main process in {}", vm.name);
    }
    Ok(p)
}

/// CPU time (seconds) and RSS (KiB) of a process of `vm`, read from the VM's /proc.
fn proc_usage(vm: &Vm, pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(vm.host_path(&format!("/proc/{pid}/stat")))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz: f64 = sh_out("getconf CLK_TCK").parse().unwrap_or(100.0);
    let status = std::fs::read_to_string(vm.host_path(&format!("/proc/{pid}/status")))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks as f64 / hz, rss))
}

/// Resident memory of `pid` by kind, in KiB: (anonymous, file-backed).
fn proc_rss_split(vm: &Vm, pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(vm.host_path(&format!("/proc/{pid}/status")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64)
    };
    Ok((field("RssAnon:"), field("RssFile:")))
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Reads `child`'s stdout lines in a thread, timestamping each with the epoch in µs.
fn collect_lines(child: &mut Child) -> Arc<Mutex<Vec<(u64, String)>>> {
    let out = child.stdout.take().expect("piped stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            l.lock().expect("lines").push((epoch_us(), line));
        }
    });
    lines
}

/// Kills and reaps a child this program started.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// probe-http: a tight /health client loop over one keep-alive connection

fn probe_http(addr: &str, max: Duration) -> Result<()> {
    let deadline = Instant::now() + max;
    let mut last = 0u16;
    let stdout = std::io::stdout();
    let mut conn: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16384];
    while Instant::now() < deadline {
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    conn = Some(s);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let s = conn.as_mut().expect("connected");
        let code = (|| -> Option<u16> {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
                .ok()?;
            let mut got = 0;
            loop {
                let n = s.read(&mut buf[got..]).ok()?;
                if n == 0 {
                    return None;
                }
                got += n;
                let text = String::from_utf8_lossy(&buf[..got]);
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = &text[..end];
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if got >= end + 4 + len {
                        return head.split_whitespace().nth(1)?.parse().ok();
                    }
                }
                if got == buf.len() {
                    return None;
                }
            }
        })();
        let Some(code) = code else {
            conn = None;
            continue;
        };
        if code != last {
            last = code;
            let mut o = stdout.lock();
            writeln!(o, "{} {code}", epoch_us())?;
            o.flush()?;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}
