//! Test harness of the project: a lab of simulated VMs, each a real systemd as PID 1 of its own
//! namespaces with its own D-Bus system bus, journald and sshd (see `lab/lab.sh`), on the host's
//! root file system or on one of another Debian release ([`Release`], `lab/rootfs.sh`), and helpers
//! to run the project's binaries inside them.
//!
//! A [`Lab`] is torn down when dropped, including when the test panics; labs left behind by a killed
//! test process are collected by the next lab that starts. Every lab has its own id, directory,
//! network namespaces and cgroup, so test binaries running at once never collide.

pub mod agent;
pub mod azure_emulator;
pub mod bot;
pub mod ctl;
pub mod deploy;
pub mod http_server;
pub mod lab;
pub mod pty;
pub mod webhook;

pub use lab::{Lab, LabBuilder, Release, Vm};

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The cargo profile directory holding the workspace's binaries (`target/debug`, or
/// `target/release` for the benchmark binary).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>, or target/<profile>/<program> (the demo)
    let dir = exe.parent().expect("binary in target/<profile>");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target/<profile>").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; panics with a hint when it has not been built.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// The agent binary.
pub fn agent_bin() -> PathBuf {
    binary("cryptobot-agent")
}

/// The directory of the portable build (`cargo xtask dist`), `<workspace>/target/dist` (or `dist`
/// in `CARGO_TARGET_DIR`, as for xtask); every lab VM sees it at the same path, whatever its release.
pub fn dist_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), |d| workspace.join(d))
        .join("dist")
}

/// The portable agent binary, which runs on every [`Release`]; panics with a hint when it has not
/// been built.
pub fn dist_agent_bin() -> PathBuf {
    let path = dist_dir().join("cryptobot-agent");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo xtask dist`",
        path.display()
    );
    path
}

/// A server on a thread of its own: dropping it sends the stop signal and waits for the thread.
#[derive(Debug)]
pub struct ServerThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve` on a thread named `name`; it gets the receiver of the stop signal.
    pub fn spawn(
        name: &str,
        serve: impl FnOnce(tokio::sync::oneshot::Receiver<()>) + Send + 'static,
    ) -> ServerThread {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(stopped))
            .expect("server thread");
        ServerThread {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `condition` holds, checking every 20 ms; panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses a command's stdout as JSON, panicking with the output when it is not.
pub fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout={} stderr={}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Panics, naming the Debian package, when `tool` is not installed (tests/setup.sh installs it).
pub fn require_tool(tool: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: apt-get install {package} (tests/setup.sh does)"
    );
}
