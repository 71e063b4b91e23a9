//! `/health` cannot be crowded out: 2,000 slow connections (slowloris) from 100 addresses on the
//! lab network fill the agent's 1,024 connection slots, and `/health` still answers in under
//! 100 ms from loopback (a local probe) and from an address that holds nothing yet (a load
//! balancer's probe), while the agent's memory stays bounded. The agent runs as shipped
//! (`deploy/cryptobot-agent.service`, default `[http]` limits) in a lab VM; the slow clients run in
//! the lab's switch namespace from addresses the test adds there.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use cryptobot_tests::{
    Lab, Vm,
    agent::{AGENT_UNIT, install_deployed_agent},
};

const CONFIG: &str = "[daemon]\ninterval = \"1s\"\n";
/// Source addresses of the slow clients, and of the newcomer.
const SOURCES: std::ops::RangeInclusive<u32> = 100..=199;
const NEWCOMER: &str = "10.200.0.250";

fn slow_clients() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/tools/slow-clients.py")
}

/// `(status code, seconds)` of one `/health` request made by `curl` with `args` before the URL.
fn probe(mut curl: Command, url: &str) -> (String, f64) {
    let out = curl
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .args(["-w", "%{http_code} %{time_total}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').unwrap_or((&text, "99"));
    (code.to_owned(), secs.parse().unwrap_or(99.0))
}

fn rss_kib(vm: &Vm) -> u64 {
    let pid = vm.unit_property(AGENT_UNIT, "MainPID");
    vm.sh(&format!(
        "awk '/^VmRSS:/ {{ print $2 }}' /proc/{pid}/status"
    ))
    .trim()
    .parse()
    .expect("VmRSS")
}

#[test]
fn health_answers_while_slow_clients_from_many_addresses_fill_every_slot() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    install_deployed_agent(vm, CONFIG);
    let switch = vm.switch_netns.clone();
    let mut add = String::new();
    for i in SOURCES {
        add.push_str(&format!("addr add 10.200.0.{i}/24 dev labbr0\n"));
    }
    add.push_str(&format!("addr add {NEWCOMER}/24 dev labbr0\n"));
    let mut ip = Command::new("ip")
        .args(["-n", &switch, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    std::io::Write::write_all(ip.stdin.as_mut().unwrap(), add.as_bytes()).unwrap();
    drop(ip.stdin.take());
    assert!(
        ip.wait().unwrap().success(),
        "adding the clients' addresses"
    );
    let url = format!("http://{}:8080/health", vm.ip);
    let rss_before = rss_kib(vm);

    let mut flood = Command::new("ip")
        .args(["netns", "exec", &switch, "python3"])
        .arg(slow_clients())
        .args([&vm.ip, "8080", "20", "20"])
        .args(SOURCES.map(|i| format!("10.200.0.{i}")))
        .stdout(Stdio::piped())
        .spawn()
        .expect("slow clients");
    let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let mut slowest = 0.0_f64;
    for _ in 0..20 {
        let (code, secs) = probe(vm.command("curl"), "http://127.0.0.1:8080/health");
        assert_eq!(code, "200", "loopback /health during the flood");
        slowest = slowest.max(secs);
        let mut remote = Command::new("ip");
        remote.args(["netns", "exec", &switch, "curl", "--interface", NEWCOMER]);
        let (code, secs) = probe(remote, &url);
        assert_eq!(code, "200", "a new client's /health during the flood");
        slowest = slowest.max(secs);
    }
    let rss_during = rss_kib(vm);

    let stats = lines.next().unwrap().unwrap();
    assert!(flood.wait().unwrap().success());
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    eprintln!(
        "slowest /health {:.1} ms; agent RSS {rss_before} KiB before, {rss_during} KiB during; clients {stats}",
        slowest * 1000.0
    );
    assert!(slowest < 0.1, "slowest /health took {slowest} s");
    // the flood really filled the slots: the agent closed or refused many of its connections
    assert!(stats["opened"].as_u64().unwrap() > 2000, "{stats}");
    assert!(stats["closed_by_server"].as_u64().unwrap() > 500, "{stats}");
    assert!(
        rss_during < rss_before + 48 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB"
    );
    assert_eq!(vm.unit_property(AGENT_UNIT, "ActiveState"), "active");
}
