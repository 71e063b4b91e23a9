//! A real gRPC health client, Python's `grpcio` with `grpcio-health-checking`, against the agent's
//! TCP server: SERVING while the snapshot is HEALTHY, NOT_SERVING after a CRITICAL one, seen both by
//! Check and by Watch. The Python packages are installed by `tests/setup.sh`; without them this
//! test fails (it does not skip). Set `PYTHON` to use another interpreter than `python3`.

#[path = "grpc_common/mod.rs"]
mod common;

use std::process::Stdio;

use common::{PATIENCE, TestAgent};
use cryptobot_agent::health::Status;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};

#[tokio::test]
async fn python_grpc_health_client_sees_serving_then_not_serving() {
    let agent = TestAgent::start(None).await;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/health_check.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(agent.tcp.to_string())
        .arg("faucet_worker.service")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; install python3 (tests/setup.sh)"));
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();

    let mut next_line = async || {
        tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .expect("the python client answers in time")
            .unwrap()
    };

    let mut lines = Vec::new();
    for _ in 0..3 {
        match next_line().await {
            Some(l) => lines.push(l),
            None => break,
        }
    }
    if lines.len() < 3 {
        let mut err = String::new();
        stderr.read_to_string(&mut err).await.unwrap();
        let status = child.wait().await.unwrap();
        panic!(
            "the python health client failed ({status}); it needs the PyPI packages grpcio and \
             grpcio-health-checking (tests/setup.sh installs them: python3 -m pip install grpcio \
             grpcio-health-checking)\nstdout: {lines:?}\nstderr: {err}"
        );
    }
    assert_eq!(
        lines,
        [
            "check - SERVING",
            "check faucet_worker.service SERVING",
            "watching SERVING"
        ]
    );

    // The client is watching: make the worker critical.
    agent.publish(Status::Critical);
    let mut rest = Vec::new();
    while let Some(l) = next_line().await {
        rest.push(l);
    }
    let status = child.wait().await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(
        rest,
        [
            "watch NOT_SERVING",
            "check - NOT_SERVING",
            "check faucet_worker.service NOT_SERVING"
        ],
        "{err}"
    );
}
