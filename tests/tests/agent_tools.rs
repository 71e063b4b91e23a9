//! Real tools against the agent running as a `Type=notify` unit with a watchdog inside a lab VM:
//! `promtool` validates its Prometheus exposition, a Python `grpc.health.v1` client (grpcio) sees
//! SERVING then NOT_SERVING, and headless Chromium renders its status page. The clients reach the
//! VM over the lab network from the switch namespace.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use cryptobot_tests::{
    Lab,
    agent::{kill_worker, start_agent},
    require_tool, wait_until,
};

const CONFIG: &str = "[daemon]\ninterval = \"1m\"\n[restart]\nenabled = false\n[http]\npublic = true\n[grpc]\ntcp_listen = \"0.0.0.0:50051\"\n";

#[test]
fn promtool_accepts_the_agents_metrics() {
    require_tool("promtool", "prometheus");
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, CONFIG, 5);
    for accept in [
        "text/plain;version=0.0.4",
        "application/openmetrics-text;version=1.0.0",
    ] {
        let out = vm.run(&[
            "curl",
            "-sf",
            "-H",
            &format!("Accept: {accept}"),
            "http://127.0.0.1:8080/metrics",
        ]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("cryptobot_service_active"), "{text}");
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(&out.stdout)
            .unwrap();
        let checked = promtool.wait_with_output().unwrap();
        assert!(
            checked.status.success(),
            "promtool rejects the {accept} exposition: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[test]
fn a_python_grpc_health_client_sees_serving_then_not_serving() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, CONFIG, 5);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/python/health_check.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut client = Command::new("ip")
        .args(["netns", "exec", &vm.switch_netns, &python])
        .arg(&script)
        .arg(format!("{}:50051", vm.ip))
        .arg("faucet_worker.service")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line == "watching SERVING" {
            break;
        }
    }
    assert!(seen.contains(&"check - SERVING".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"check faucet_worker.service SERVING".to_owned()),
        "{seen:?}"
    );
    kill_worker(vm);
    for line in lines {
        seen.push(line.unwrap());
    }
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{seen:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen.contains(&"watch NOT_SERVING".to_owned()), "{seen:?}");
    assert!(seen.contains(&"check - NOT_SERVING".to_owned()), "{seen:?}");
}

#[test]
fn chromium_renders_the_status_page_of_a_running_agent() {
    require_tool("chromium", "chromium");
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, CONFIG, 5);
    vm.systemctl("stop faucet_worker");
    wait_until(
        "the agent to see the worker down",
        Duration::from_secs(2),
        || {
            vm.unit_property("cryptobot-agent.service", "StatusText")
                .starts_with("CRITICAL")
        },
    );
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("page.png");
    let url = format!("http://{}:8080/", vm.ip);
    let chromium = |extra: &[String]| {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &vm.switch_netns,
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
            ])
            .args([
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
            ])
            .args([
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom".into()]);
    assert!(dom.contains("CRITICAL"), "the page shows the status");
    assert!(
        dom.contains("Service is not active"),
        "the page shows the alert"
    );
    assert!(dom.contains(":8080/health"), "examples use the real port");
    chromium(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,1600".into(),
    ]);
    // not blank: a real page has many colours
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> =
        buf[..info.buffer_size()].chunks(step).collect();
    assert!(
        colours.len() > 32,
        "the screenshot is blank ({} colours)",
        colours.len()
    );
}
