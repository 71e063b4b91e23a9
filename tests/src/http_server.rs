//! A plain HTTP file server on the lab's switch (10.200.0.1, where the VMs' default route goes),
//! for run-command deploys that fetch the agent by URL: `python3 -m http.server` inside the lab's
//! switch namespace, stopped on drop.

use std::{
    io::BufRead as _,
    path::Path,
    process::{Child, Command, Stdio},
};

/// The running server.
#[derive(Debug)]
pub struct HttpServer(Child);

impl HttpServer {
    /// Serves `dir` on 10.200.0.1:8765 inside `switch_netns`; returns the server and the URL of
    /// `cryptobot-agent` in `dir`.
    pub fn start(switch_netns: &str, dir: &Path) -> (HttpServer, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", switch_netns, "python3", "-u", "-m"])
            .args(["http.server", "8765", "--bind", "10.200.0.1", "--directory"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        // It prints "Serving HTTP on ..." once the socket is listening.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("http.server output");
        assert!(line.starts_with("Serving HTTP"), "http.server: {line}");
        (
            HttpServer(child),
            "http://10.200.0.1:8765/cryptobot-agent".to_owned(),
        )
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
