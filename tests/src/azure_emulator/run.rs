//! Running a run-command script and shaping its result like Azure's guest agents. Linux: one
//! `ProvisioningState/succeeded` status whose message is `Enable succeeded: \n[stdout]\n<last 4096
//! bytes of stdout>\n[stderr]\n<last 4096 bytes of stderr>`, and no exit code. Windows: one status
//! per stream (`ComponentStatus/StdOut/succeeded`, `ComponentStatus/StdErr/succeeded`), each
//! message the stream's tail with CRLF line ends.

use std::{io::Write as _, process::Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::Vm;

/// How much of each stream the Linux guest agent keeps.
pub const TAIL_BYTES: usize = 4096;

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The `RunCommandResult` of a script with this stdout and stderr.
pub fn linux_result(stdout: &[u8], stderr: &[u8]) -> Value {
    json!({"value": [{
        "code": "ProvisioningState/succeeded",
        "level": "Info",
        "displayStatus": "Provisioning succeeded",
        "message": format!("Enable succeeded: \n[stdout]\n{}\n[stderr]\n{}", tail(stdout), tail(stderr)),
    }]})
}

/// The Windows `RunCommandResult` of a script with this stdout and stderr.
pub fn windows_result(stdout: &[u8], stderr: &[u8]) -> Value {
    let crlf = |b: &[u8]| tail(b).replace("\r\n", "\n").replace('\n', "\r\n");
    json!({"value": [
        {"code": "ComponentStatus/StdOut/succeeded", "level": "Info",
         "displayStatus": "Provisioning succeeded", "message": crlf(stdout)},
        {"code": "ComponentStatus/StdErr/succeeded", "level": "Info",
         "displayStatus": "Provisioning succeeded", "message": crlf(stderr)},
    ]})
}

/// How a VM's guest agent shapes a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// [`linux_result`].
    Linux,
    /// [`windows_result`].
    Windows,
}

impl Shape {
    /// The shape of a VM with this `osType`.
    pub fn of(os_type: &str) -> Shape {
        if os_type.eq_ignore_ascii_case("windows") {
            Shape::Windows
        } else {
            Shape::Linux
        }
    }

    /// The `RunCommandResult` of a script with this stdout and stderr.
    pub fn result(self, stdout: &[u8], stderr: &[u8]) -> Value {
        match self {
            Shape::Linux => linux_result(stdout, stderr),
            Shape::Windows => windows_result(stdout, stderr),
        }
    }
}

/// Runs `script` as root in `vm`: `bash -s -- PARAMS...` with the script on stdin.
pub fn in_lab_vm(vm: &Vm, shape: Shape, script: &[String], params: &[String]) -> Value {
    let mut cmd = vm.command("bash");
    cmd.arg("-s")
        .arg("--")
        .args(params)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return shape.result(b"", format!("cannot enter the VM: {e}").as_bytes()),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = script.join("\n");
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) => shape.result(&out.stdout, &out.stderr),
        Err(e) => shape.result(b"", format!("cannot wait for the script: {e}").as_bytes()),
    }
}

/// The canned report of a synthetic VM (the agent's `status --json` shape, abridged).
pub fn canned_report(vm: &str) -> Value {
    json!({
        "timestamp": "2026-01-01T00:00:00.000000+00:00",
        "status": "HEALTHY",
        "service_active": true,
        "service_running": true,
        "crash_count": 0,
        "disk_usage_percent": 41,
        "memory_usage_percent": 37,
        "heartbeat_age_seconds": 3,
        "alerts": [],
        "metrics": {"disk_usage": 41, "memory_usage": 37, "heartbeat_age": 3, "crash_count": 0},
        "checks": [],
        "unit": {"active_state": "active", "sub_state": "running"},
        "agent": {"version": "0.1.0", "hostname": vm},
        "daemon": {
            "started_at": "2026-01-01T00:00:00Z",
            "restart_enabled": true,
            "backoff": {"restart_count": 0, "last_restart_time": null, "backoff_seconds": 10, "next_restart_at": null},
            "pause": null,
            "events": []
        }
    })
}

/// A synthetic VM's answer to the cryptoctl script with these parameters (`$1` is the action).
pub fn synthetic(vm: &str, shape: Shape, params: &[String]) -> Value {
    let action = params.first().map_or("health", String::as_str);
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let report = canned_report(vm).to_string();
    let mut line = format!(
        "CRYPTOCTL-RESULT v=1 action={action} agent=present source=status code=0 worker=active report=b64:{}",
        b64(&report)
    );
    match action {
        "restart" => line.push_str(&format!(
            " restart_via=agent restart_code=0 restart_output=b64:{}",
            b64("restarted: active again\n")
        )),
        "pause" | "resume" => line.push_str(&format!(
            " control_code=0 control_output=b64:{}",
            b64(&format!("{action}d\n"))
        )),
        "logs" => line.push_str(&format!(
            " log_code=0 log_lines=1 log_truncated=0 log=b64:{}",
            b64("2026-01-01T00:00:00+0000 vm faucet_worker[1]: started\n")
        )),
        _ => {}
    }
    shape.result(format!("{line}\nCRYPTOCTL-EXIT 0\n").as_bytes(), b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_4096_bytes_of_stdout() {
        let out = "x".repeat(5000) + "END";
        let v = linux_result(out.as_bytes(), b"err");
        let m = v["value"][0]["message"].as_str().unwrap();
        let stdout = m
            .strip_prefix("Enable succeeded: \n[stdout]\n")
            .unwrap()
            .split("\n[stderr]\n")
            .next()
            .unwrap();
        assert_eq!(stdout.len(), 4096);
        assert!(stdout.ends_with("END"));
        assert!(m.ends_with("\n[stderr]\nerr"));
    }

    #[test]
    fn windows_has_one_status_per_stream_with_crlf() {
        let v = windows_result(b"a\nb\r\n", b"");
        assert_eq!(v["value"][0]["code"], "ComponentStatus/StdOut/succeeded");
        assert_eq!(v["value"][0]["message"], "a\r\nb\r\n");
        assert_eq!(v["value"][1]["code"], "ComponentStatus/StdErr/succeeded");
        assert_eq!(v["value"][1]["message"], "");
    }
}
