//! The daemon's HTTP endpoint inside a lab VM: `/health` follows a crash within a second, and the
//! access rules hold for a client outside loopback (the lab network's switch, 10.200.0.1).

use std::{
    process::Output,
    time::{Duration, Instant},
};

use cryptobot_tests::{
    Lab, Vm,
    agent::{kill_worker, start_agent},
    wait_until,
};

const TOKEN: &str = "lab-token-0123456789abcdef";

/// `curl` from inside the VM (loopback): status code and body.
fn curl_inside(vm: &Vm, path: &str) -> (u16, String) {
    parse(&vm.run(&[
        "curl",
        "-s",
        "-m",
        "5",
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:8080{path}"),
    ]))
}

/// `curl` from the lab's switch namespace, i.e. from another machine on the VM's network.
fn curl_remote(vm: &Vm, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &vm.switch_netns,
        "curl",
        "-s",
        "-m",
        "5",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    cmd.arg(format!("http://{}:8080{path}", vm.ip));
    parse(&cmd.output().expect("curl"))
}

fn parse(out: &Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn health_answers_503_within_a_second_of_a_crash() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(
        vm,
        "[daemon]\ninterval = \"1m\"\n[restart]\nenabled = false\n",
        5,
    );
    wait_until("/health to be 200", Duration::from_secs(5), || {
        curl_inside(vm, "/health").0 == 200
    });
    let (_, body) = curl_inside(vm, "/health");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["ApplicationHealthState"], "Healthy");
    let killed = Instant::now();
    kill_worker(vm);
    wait_until("/health to be 503", Duration::from_secs(1), || {
        curl_inside(vm, "/health").0 == 503
    });
    let took = killed.elapsed();
    let (code, body) = curl_inside(vm, "/health");
    assert_eq!(code, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(v["status"], "healthy");
    assert_eq!(v["ApplicationHealthState"], "Unhealthy");
    assert!(!v["alerts"].as_array().unwrap().is_empty(), "{v}");
    eprintln!("503 after {took:?}");
}

#[test]
fn metrics_and_page_need_the_token_outside_loopback() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, &format!("[http]\ntoken = \"{TOKEN}\"\n"), 5);
    wait_until("the endpoint", Duration::from_secs(5), || {
        curl_inside(vm, "/health").0 == 200
    });
    // /health is public
    assert_eq!(curl_remote(vm, "/health", None).0, 200);
    // the rest needs the token from outside
    for path in ["/metrics", "/"] {
        assert_eq!(curl_remote(vm, path, None).0, 401, "{path} without a token");
        assert_eq!(
            curl_remote(vm, path, Some("wrong-token-0123456789")).0,
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            curl_remote(vm, path, Some(TOKEN)).0,
            200,
            "{path} with the token"
        );
        assert_eq!(curl_inside(vm, path).0, 200, "{path} from loopback");
    }
    let (_, body) = curl_remote(vm, "/metrics", Some(TOKEN));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "HEALTHY");
    assert!(v["daemon"]["backoff"].is_object(), "{v}");
}

#[test]
fn without_a_token_remote_clients_only_get_health() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(vm, "", 5);
    wait_until("the endpoint", Duration::from_secs(5), || {
        curl_inside(vm, "/health").0 == 200
    });
    assert_eq!(curl_remote(vm, "/health", None).0, 200);
    assert_eq!(curl_remote(vm, "/metrics", None).0, 403);
    assert_eq!(curl_remote(vm, "/", Some(TOKEN)).0, 403);
}
