//! The disk-full forecast in a lab VM: a mount filled at a steady rate gives `Disk /data will be
//! full in about …` while its usage is still far below the static thresholds, in the running
//! agent's JSON report, its Prometheus metrics and its status page; the warning clears once the
//! fill stops.
//!
//! Differs from production: the forecast's durations are scaled down (window 40 s, history 10 s,
//! warning under 10 min, critical under 15 s, check interval 1 s) and the floor is 10 %, so a small
//! tmpfs fills visibly in a minute. The unit runs the lab's debug agent; the detection is the
//! shipped code.

use std::time::Duration;

use cryptobot_tests::{
    Lab, Vm,
    agent::{AGENT_CONFIG, start_agent},
    agent_bin, json_of, wait_until,
};

const CONFIG: &str = r#"
[disk]
mounts = ["/", "/data"]
forecast_window = "40s"
forecast_min_history = "10s"
forecast_floor_percent = 10
full_within_warning = "10m"
full_within_critical = "15s"

[daemon]
interval = "1s"

[restart]
enabled = false
"#;

fn report(vm: &Vm) -> serde_json::Value {
    let out = vm
        .command(agent_bin())
        .args(["--config", AGENT_CONFIG, "status", "--json"])
        .output()
        .unwrap();
    json_of(&out)
}

fn data_disk(report: &serde_json::Value) -> serde_json::Value {
    report["disks"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["mount"] == "/data"))
        .cloned()
        .unwrap_or_else(|| panic!("no /data in {report}"))
}

fn filling_alert(report: &serde_json::Value) -> Option<String> {
    report["alerts"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.starts_with("Disk /data will be full in about "))
        .map(str::to_owned)
}

/// `path` from inside the VM, asking for the Prometheus text format as a scrape does (`/metrics`
/// answers JSON otherwise).
fn curl(vm: &Vm, path: &str) -> String {
    let out = vm.run(&[
        "curl",
        "-sf",
        "-m",
        "5",
        "-H",
        "Accept: text/plain; version=0.0.4",
        &format!("http://127.0.0.1:8080{path}"),
    ]);
    assert!(out.status.success(), "{path}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_steadily_filling_mount_is_forecast_before_the_threshold_and_clears_when_it_stops() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    // 100 MiB, 20 % used before the agent starts.
    vm.sh("mkdir -p /data && mount -t tmpfs -o size=100m lab /data \
         && dd if=/dev/zero of=/data/base bs=1M count=20 2>/dev/null");
    start_agent(vm, CONFIG, 10);
    wait_until("the agent's first report", Duration::from_secs(10), || {
        vm.command(agent_bin())
            .args(["--config", AGENT_CONFIG, "status", "--json"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let before = report(vm);
    assert!(data_disk(&before)["forecast"].is_null(), "{before}");
    assert!(filling_alert(&before).is_none(), "{before}");

    // 1 MiB a second, as a service of its own so it can be stopped.
    vm.sh("systemd-run --unit=filler --quiet sh -c \
         'i=0; while [ $i -lt 70 ]; do dd if=/dev/zero of=/data/fill$i bs=1M count=1 2>/dev/null; \
          i=$((i+1)); sleep 1; done; sleep infinity'");
    let mut alerted = serde_json::Value::Null;
    wait_until("the forecast warning", Duration::from_secs(45), || {
        alerted = report(vm);
        filling_alert(&alerted).is_some()
    });
    let disk = data_disk(&alerted);
    let percent = disk["usage"]["percent"].as_u64().unwrap();
    assert!(
        percent < 80,
        "the forecast must come before the static threshold: {percent}% in {alerted}"
    );
    let seconds = disk["forecast"].as_u64().expect("seconds until full");
    assert!(
        (15..600).contains(&seconds),
        "at 1 MiB/s with {percent}% of 100 MiB used, full in about {} s: {seconds}",
        100 - percent
    );
    let check = alerted["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "disk:/data")
        .cloned()
        .unwrap();
    assert_eq!(check["alert"]["kind"], "disk_filling", "{check}");
    assert_eq!(check["status"], "WARNING", "{check}");

    // The same forecast in Prometheus and on the status page.
    let metrics = curl(vm, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cryptobot_disk_full_in_seconds{mount=\"/data\"} ")),
        "{metrics}"
    );
    let page = curl(vm, "/");
    assert!(
        page.contains("class=\"projection\""),
        "no projection on the disk chart"
    );
    assert!(page.contains("/data full in about"), "{page}");

    // The fill stops: once the window holds only flat samples, the warning clears.
    vm.systemctl("stop filler.service");
    let mut cleared = serde_json::Value::Null;
    wait_until("the forecast to clear", Duration::from_secs(90), || {
        cleared = report(vm);
        filling_alert(&cleared).is_none()
    });
    assert!(data_disk(&cleared)["usage"]["percent"].as_u64().unwrap() < 90);
    let metrics = curl(vm, "/metrics");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("cryptobot_disk_full_in_seconds{mount=\"/data\"}"))
            || data_disk(&cleared)["forecast"].is_u64(),
        "a metric without a forecast: {metrics}"
    );
}
