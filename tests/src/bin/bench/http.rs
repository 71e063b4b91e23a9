//! Benchmark 2: `/health` throughput and latency under wrk, against a minimal axum handler.

use super::*;

pub(super) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) fn wait_listening(port: u16) -> Result<()> {
    wait_for(
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(20),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
}

#[derive(Debug, Default)]
pub(super) struct Wrk {
    rps: f64,
    p99_ms: f64,
    p50_ms: f64,
    non2xx: u64,
}

pub(super) fn parse_latency(v: &str) -> f64 {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

pub(super) fn wrk(port: u16, secs: u64) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/health"))
        .output()
        .context("run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let mut w = Wrk::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            ["99%", v] => w.p99_ms = parse_latency(v),
            ["50%", v] => w.p50_ms = parse_latency(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non2xx = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    if w.rps == 0.0 {
        bail!("no figures from wrk: {text}");
    }
    Ok(w)
}

pub(super) fn bench_http(o: &Opts, md: &mut String) -> Result<()> {
    let secs = if o.quick { 5 } else { 10 };
    let dir = tempfile::tempdir()?;
    let (p_agent, p_grpc, p_ceiling) = (free_port()?, free_port()?, free_port()?);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[worker]\nunit = \"bench-absent.service\"\n[state]\ndir = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{p_agent}\"\nmax_connections_per_ip = 128\n\
             [grpc]\nsocket = \"{}\"\ntcp_listen = \"127.0.0.1:{p_grpc}\"\n\
             [restart]\nenabled = false\n[alerts]\nenabled = false\n",
            dir.path().join("state").display(),
            dir.path().join("agent.sock").display()
        ),
    )?;
    let agent = Reaped(
        Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("NOTIFY_SOCKET", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let ceiling = Reaped(
        Command::new(binary("bench-ceiling"))
            .arg(format!("127.0.0.1:{p_ceiling}"))
            .args(["--for", "600"])
            .spawn()?,
    );
    wait_listening(p_agent)?;
    wait_listening(p_ceiling)?;
    // warm both up, then measure alternately: ceiling, agent
    let _ = wrk(p_ceiling, 1)?;
    let _ = wrk(p_agent, 1)?;
    let c = wrk(p_ceiling, secs)?;
    let a = wrk(p_agent, secs)?;
    drop(agent);
    drop(ceiling);
    let tput = a.rps / c.rps;
    let lat = a.p99_ms / c.p99_ms;
    println!(
        "agent {:.0} req/s p99 {:.2} ms; ceiling {:.0} req/s p99 {:.2} ms; throughput {:.0}%, p99 {:.2}x",
        a.rps,
        a.p99_ms,
        c.rps,
        c.p99_ms,
        tput * 100.0,
        lat
    );
    let _ = write!(
        md,
        "### 2. `/health` under `wrk -t2 -c64 -d{secs}s` on 127.0.0.1\n\n\
         | server | requests/s | p50 ms | p99 ms |\n|---|---|---|---|\n\
         | minimal axum handler, constant body (ceiling) | {:.0} | {:.2} | {:.2} |\n\
         | `cryptobot-agent run` | {:.0} | {:.2} | {:.2} |\n\n\
         Agent / ceiling: throughput **{:.0} %** (goal ≥ 80 %: **{}**), p99 **{:.2}×** \
         (goal ≤ 1.25×: **{}**). The agent runs on the host with a unit that does not exist and \
         no system bus, so it serves its UNKNOWN snapshot (503, {} non-2xx answers); the snapshot \
         is served the same way whatever its status. Its `max_connections_per_ip` is 128 here: \
         wrk opens its 64 connections from one address, and the default cap (32) would refuse \
         half of them. wrk, the agent and the ceiling share the machine's CPUs.\n\n",
        c.rps,
        c.p50_ms,
        c.p99_ms,
        a.rps,
        a.p50_ms,
        a.p99_ms,
        tput * 100.0,
        goal(tput >= 0.8),
        lat,
        goal(lat <= 1.25),
        a.non2xx
    );
    Ok(())
}
