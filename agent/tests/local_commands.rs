//! The local commands end to end: the built `cryptobot-agent` binary with `--socket` against an
//! in-process agent on a temporary unix socket; output and exit codes.

#[path = "grpc_common/mod.rs"]
mod common;

use std::{path::Path, time::Duration};

use common::{PATIENCE, Supervisor, TestAgent};
use cryptobot_agent::{daemon::Control, health::Status};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn agent_cmd(socket: &Path, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryptobot-agent"));
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("the command finishes in time")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn status_prints_the_check_layout_and_exits_with_the_status() {
    let agent = TestAgent::start(None).await;
    let run = agent_cmd(&agent.socket, &["status"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&agent.current().report.to_text()),
        "{}",
        run.stdout
    );
    for expected in [
        "Overall Status: HEALTHY",
        "Backoff: 1 restart(s) in this episode, next delay 20s",
        "Paused: no",
        "Recent Events:",
        "restart: worker failed (result: signal) (restarted, after 10s)",
    ] {
        assert!(run.stdout.contains(expected), "{expected}:\n{}", run.stdout);
    }

    agent.publish(Status::Critical);
    let run = agent_cmd(&agent.socket, &["status"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stdout.contains("Overall Status: CRITICAL"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nAlerts:\n  • "), "{}", run.stdout);

    agent.publish(Status::Warning);
    assert_eq!(agent_cmd(&agent.socket, &["status"]).await.code, Some(1));
    agent.publish(Status::Unknown);
    assert_eq!(agent_cmd(&agent.socket, &["status"]).await.code, Some(3));
}

#[tokio::test]
async fn status_json_is_the_agents_json() {
    let agent = TestAgent::start(None).await;
    agent.publish(Status::Critical);
    let run = agent_cmd(&agent.socket, &["status", "--json"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, format!("{}\n", agent.current().to_json()));
}

#[tokio::test]
async fn controls_print_their_outcome() {
    let mut agent = TestAgent::start(None).await;

    let run = agent_cmd(&agent.socket, &["restart"]).await;
    assert_eq!(run.code, Some(1), "deferred: {}", run.stderr);
    assert!(
        run.stderr.contains("deferred") && run.stderr.contains("2025-12-01T00:15:14Z"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(
        agent.next_control().await,
        Control::Restart { force: false }
    );

    let run = agent_cmd(&agent.socket, &["restart", "--force"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "restarted: faucet_worker.service is active again\n"
    );
    assert_eq!(agent.next_control().await, Control::Restart { force: true });

    let run = agent_cmd(&agent.socket, &["pause", "--for", "1h"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "paused until 2025-12-01T00:15:14Z\n");
    assert_eq!(
        agent.next_control().await,
        Control::Pause {
            duration: Some(Duration::from_secs(3600))
        }
    );

    let run = agent_cmd(&agent.socket, &["pause"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("paused until resumed"),
        "{}",
        run.stdout
    );
    assert_eq!(
        agent.next_control().await,
        Control::Pause { duration: None }
    );

    let run = agent_cmd(&agent.socket, &["resume"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "resumed\n"));
    assert_eq!(agent.next_control().await, Control::Resume);

    let run = agent_cmd(&agent.socket, &["reset-backoff"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("restart backoff reset"),
        "{}",
        run.stdout
    );
    assert_eq!(agent.next_control().await, Control::ResetBackoff);
}

#[tokio::test]
async fn bad_pause_duration_is_a_usage_error() {
    let mut agent = TestAgent::start(None).await;
    let run = agent_cmd(&agent.socket, &["pause", "--for", "soon"]).await;
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("soon"), "{}", run.stderr);
    // Nothing was sent: the next control the supervisor sees is this one.
    agent_cmd(&agent.socket, &["resume"]).await;
    assert_eq!(agent.next_control().await, Control::Resume);
}

#[tokio::test]
async fn unreachable_agent_is_unknown_and_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["restart"],
        &["pause"],
        &["resume"],
        &["reset-backoff"],
    ] {
        let run = agent_cmd(&socket, args).await;
        assert_eq!(run.code, Some(3), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&socket.display().to_string()),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[tokio::test]
async fn agent_shutting_down_is_unknown() {
    let agent = TestAgent::start_with(None, Supervisor::Gone).await;
    let run = agent_cmd(&agent.socket, &["restart", "--force"]).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("shutting down"), "{}", run.stderr);
}
