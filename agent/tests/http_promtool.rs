//! `/metrics` in the Prometheus formats passes the real `promtool check metrics`.

mod common;

use std::process::Stdio;

use cryptobot_agent::health::Status;
use tokio::{io::AsyncWriteExt, process::Command};

/// What Prometheus sends when it scrapes (it prefers OpenMetrics).
const SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Runs `promtool check metrics` on `text`; returns its exit success and its output.
async fn promtool_check(text: &str) -> (bool, String) {
    let promtool = common::require_tool("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promtool starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("promtool finishes within 60 s")
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

#[tokio::test]
async fn metrics_pass_promtool_in_both_text_formats() {
    for status in [
        Status::Healthy,
        Status::Warning,
        Status::Critical,
        Status::Unknown,
    ] {
        let served = common::serve_sample(status).await;
        for (accept, content_type) in [
            ("text/plain;version=0.0.4", "text/plain; version=0.0.4"),
            (SCRAPE_ACCEPT, "application/openmetrics-text"),
        ] {
            let (code, head, body) =
                common::get(served.addr, "/metrics", &[("Accept", accept)]).await;
            assert_eq!(code, 200, "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-type: {content_type}")),
                "{status:?} {accept}: {head}"
            );
            let (ok, said) = promtool_check(&body).await;
            assert!(
                ok,
                "{status:?} {accept}: promtool said:\n{said}\n---\n{body}"
            );

            for name in [
                "cryptobot_status{status=\"healthy\"}",
                "cryptobot_check_status{check=\"service\"",
                "cryptobot_disk_usage_percent{mount=\"/\"}",
                "cryptobot_memory_usage_percent ",
                "cryptobot_heartbeat_age_seconds ",
                "cryptobot_journal_errors ",
                "cryptobot_restart_backoff_seconds ",
                "cryptobot_agent_restarts ",
                "cryptobot_paused ",
                "cryptobot_build_info{version=",
            ] {
                assert!(body.contains(name), "{status:?}: {name} missing in\n{body}");
            }
            let service_known = status != Status::Unknown;
            for name in [
                "cryptobot_service_active ",
                "cryptobot_service_running ",
                "cryptobot_systemd_restarts ",
            ] {
                assert_eq!(
                    body.contains(name),
                    service_known,
                    "{status:?}: {name} (left out only when unknown)\n{body}"
                );
            }
        }
    }
}

/// The check itself can fail: promtool rejects a broken exposition.
#[tokio::test]
async fn promtool_rejects_broken_metrics() {
    let (ok, said) = promtool_check("# TYPE cryptobot_x gauge\ncryptobot_x{a=\"1\" 2\n").await;
    assert!(!ok, "promtool accepted a broken exposition: {said}");
    let (ok, _) = promtool_check("cryptobot_requests 1\n# TYPE cryptobot_requests counter\n").await;
    assert!(!ok, "promtool accepted a counter without _total and help");
}
