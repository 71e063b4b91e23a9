//! Action run-command (`POST .../virtualMachines/{vm}/runCommand`) as a long-running operation:
//! `202 Accepted` with `Location` (and `Azure-AsyncOperation`), then polls of `Location` (202 while
//! running, honouring `Retry-After`) until it answers 200 with the `RunCommandResult`. A 409 (one
//! run-command at a time per VM) is retried later. The result is parsed for Linux (one status whose
//! message frames `[stdout]` and `[stderr]`) and Windows (one status per stream).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{
    client::{ArmClient, ArmResponse, COMPUTE_API_VERSION},
    errors::ArmError,
    vms::InstanceViewStatus,
};

/// `RunCommandInput`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCommandInput {
    /// `RunShellScript` on Linux.
    pub command_id: String,
    /// Script lines.
    pub script: Vec<String>,
    /// Positional parameters (`$1..` in the order given).
    pub parameters: Vec<RunCommandParameter>,
}

/// One parameter.
#[derive(Debug, Clone, Serialize)]
pub struct RunCommandParameter {
    /// Name (not used by the script).
    pub name: String,
    /// Value.
    pub value: String,
}

/// `RunCommandResult`.
#[derive(Debug, Clone, Deserialize)]
pub struct RunCommandResult {
    /// Statuses.
    #[serde(default)]
    pub value: Vec<InstanceViewStatus>,
}

/// The script's output as run-command returns it: on Linux only the last 4096 bytes of stdout and
/// no exit code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptOutput {
    /// stdout (a tail).
    pub stdout: String,
    /// stderr (a tail).
    pub stderr: String,
    /// What Azure said about the extension when it was not `Enable succeeded`.
    pub extension_message: Option<String>,
}

/// Splits a `RunCommandResult` into stdout and stderr.
pub fn parse_result(result: &RunCommandResult) -> Result<ScriptOutput, String> {
    let stream = |name: &str| {
        result
            .value
            .iter()
            .find(|s| s.code.starts_with(&format!("ComponentStatus/{name}/")))
            .map(|s| s.message.clone().unwrap_or_default())
    };
    if let Some(stdout) = stream("StdOut") {
        return Ok(ScriptOutput {
            stdout,
            stderr: stream("StdErr").unwrap_or_default(),
            extension_message: None,
        });
    }
    let status = result
        .value
        .iter()
        .find(|s| s.code.starts_with("ProvisioningState/"))
        .or_else(|| result.value.first())
        .ok_or_else(|| "the run-command result has no status".to_owned())?;
    let message = status.message.clone().unwrap_or_default();
    let failed = status.level.as_deref() == Some("Error") || status.code.ends_with("/failed");
    let Some(start) = message.find("[stdout]\n") else {
        return Err(format!(
            "run-command {}: {}",
            status.display_status.as_deref().unwrap_or(&status.code),
            message.trim()
        ));
    };
    let prefix = message[..start].trim().trim_end_matches(':').trim();
    let body = &message[start + "[stdout]\n".len()..];
    let (stdout, stderr) = match body.rfind("\n[stderr]\n") {
        Some(i) => (&body[..i], &body[i + "\n[stderr]\n".len()..]),
        None => match body.strip_suffix("\n[stderr]") {
            Some(out) => (out, ""),
            None => (body, ""),
        },
    };
    Ok(ScriptOutput {
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
        extension_message: (failed || (prefix != "Enable succeeded" && !prefix.is_empty()))
            .then(|| prefix.to_owned()),
    })
}

impl ArmClient {
    /// Runs a shell script on a Linux VM and waits for its output, until `deadline`.
    pub async fn run_shell_script(
        &self,
        vm_id: &str,
        input: &RunCommandInput,
        deadline: Instant,
    ) -> Result<ScriptOutput, ArmError> {
        let url = self.resource_url(&format!("{vm_id}/runCommand"), COMPUTE_API_VERSION);
        let body = serde_json::to_value(input).expect("serializable");
        let mut conflicts = 0u32;
        let accepted = loop {
            let resp = self.send(Method::POST, &url, Some(&body), deadline).await?;
            match resp.status {
                StatusCode::OK => return self.finish(&resp),
                StatusCode::ACCEPTED => break resp,
                StatusCode::CONFLICT => {
                    // Another run-command (or extension operation) is in progress on this VM.
                    conflicts += 1;
                    let wait = resp
                        .retry_after()
                        .unwrap_or_else(|| {
                            self.retry().backoff(conflicts).max(Duration::from_secs(5))
                        })
                        .min(Duration::from_secs(60));
                    let err = ArmError::from_response(409, &resp.body);
                    if Instant::now() + wait > deadline {
                        return Err(err);
                    }
                    tracing::info!(%vm_id, ?wait, "another run-command is in progress; retrying");
                    tokio::time::sleep(wait).await;
                }
                s => return Err(ArmError::from_response(s.as_u16(), &resp.body)),
            }
        };
        self.wait_for_result(&accepted, deadline).await
    }

    async fn wait_for_result(
        &self,
        accepted: &ArmResponse,
        deadline: Instant,
    ) -> Result<ScriptOutput, ArmError> {
        let location = accepted.header("location").map(str::to_owned);
        let async_op = accepted.header("azure-asyncoperation").map(str::to_owned);
        let mut wait = accepted.retry_after().unwrap_or(self.poll_interval);
        match (location, async_op) {
            (Some(location), _) => {
                let url = self.follow(&location)?;
                loop {
                    self.sleep_until_next_poll(wait, deadline).await?;
                    let resp = self.send(Method::GET, &url, None, deadline).await?;
                    match resp.status {
                        StatusCode::OK => return self.finish(&resp),
                        StatusCode::ACCEPTED => {
                            wait = resp.retry_after().unwrap_or(self.poll_interval);
                        }
                        s => return Err(ArmError::from_response(s.as_u16(), &resp.body)),
                    }
                }
            }
            (None, Some(op)) => {
                let url = self.follow(&op)?;
                self.poll_async_operation(&url, wait, deadline).await
            }
            (None, None) => Err(ArmError::Protocol {
                url: accepted.url.to_string(),
                message: "202 Accepted without Location or Azure-AsyncOperation".into(),
            }),
        }
    }

    async fn poll_async_operation(
        &self,
        url: &Url,
        mut wait: Duration,
        deadline: Instant,
    ) -> Result<ScriptOutput, ArmError> {
        #[derive(Deserialize)]
        struct Operation {
            status: String,
            #[serde(default)]
            properties: Option<OperationProperties>,
            #[serde(default)]
            error: Option<super::errors::CloudErrorBody>,
        }
        #[derive(Deserialize)]
        struct OperationProperties {
            output: Option<RunCommandResult>,
        }
        loop {
            self.sleep_until_next_poll(wait, deadline).await?;
            let resp = self.send(Method::GET, url, None, deadline).await?;
            if !resp.status.is_success() {
                return Err(ArmError::from_response(resp.status.as_u16(), &resp.body));
            }
            let op: Operation = resp.json()?;
            match op.status.as_str() {
                "InProgress" => wait = resp.retry_after().unwrap_or(self.poll_interval),
                "Succeeded" => {
                    let result =
                        op.properties
                            .and_then(|p| p.output)
                            .ok_or_else(|| ArmError::Protocol {
                                url: url.to_string(),
                                message: "the finished operation has no output".into(),
                            })?;
                    return parse_result(&result).map_err(|m| ArmError::Protocol {
                        url: url.to_string(),
                        message: m,
                    });
                }
                other => {
                    let e = op.error.unwrap_or(super::errors::CloudErrorBody {
                        code: other.to_owned(),
                        message: format!("the run-command ended {other}"),
                    });
                    return Err(ArmError::Api {
                        status: 200,
                        code: e.code,
                        message: e.message,
                    });
                }
            }
        }
    }

    async fn sleep_until_next_poll(
        &self,
        wait: Duration,
        deadline: Instant,
    ) -> Result<(), ArmError> {
        let wait = wait.min(Duration::from_secs(60));
        if Instant::now() + wait > deadline {
            return Err(ArmError::Timeout(
                deadline.saturating_duration_since(Instant::now()),
            ));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn finish(&self, resp: &ArmResponse) -> Result<ScriptOutput, ArmError> {
        let result: RunCommandResult = resp.json()?;
        parse_result(&result).map_err(|m| ArmError::Protocol {
            url: super::client::without_query(&resp.url),
            message: m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> RunCommandResult {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn linux_one_status_with_framed_streams() {
        let r = result(
            r#"{"value":[{"code":"ProvisioningState/succeeded","level":"Info","displayStatus":"Provisioning succeeded",
              "message":"Enable succeeded: \n[stdout]\n/var/lib/waagent/run-command/download/0/script.sh hello\n\n[stderr]\n"}]}"#,
        );
        let o = parse_result(&r).unwrap();
        assert_eq!(
            o.stdout,
            "/var/lib/waagent/run-command/download/0/script.sh hello\n"
        );
        assert_eq!(o.stderr, "");
        assert_eq!(o.extension_message, None);
    }

    #[test]
    fn linux_stderr_and_a_stdout_containing_the_marker() {
        let r = result(
            r#"{"value":[{"code":"ProvisioningState/succeeded","level":"Info",
              "message":"Enable succeeded: \n[stdout]\nsays [stderr] inline\nCRYPTOCTL-EXIT 0\n\n[stderr]\nwarning: x\n"}]}"#,
        );
        let o = parse_result(&r).unwrap();
        assert_eq!(o.stdout, "says [stderr] inline\nCRYPTOCTL-EXIT 0\n");
        assert_eq!(o.stderr, "warning: x\n");
    }

    #[test]
    fn windows_two_statuses() {
        let r = result(
            r#"{"value":[{"code":"ComponentStatus/StdOut/succeeded","level":"Info","displayStatus":"Provisioning succeeded","message":"out\r\n"},
                         {"code":"ComponentStatus/StdErr/succeeded","level":"Info","displayStatus":"Provisioning succeeded","message":"err"}]}"#,
        );
        let o = parse_result(&r).unwrap();
        assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\r\n", "err"));
    }

    #[test]
    fn failed_extension_is_reported() {
        let r = result(
            r#"{"value":[{"code":"ProvisioningState/failed","level":"Error","displayStatus":"Provisioning failed","message":"Enable failed: timed out"}]}"#,
        );
        assert_eq!(
            parse_result(&r).unwrap_err(),
            "run-command Provisioning failed: Enable failed: timed out"
        );
        assert!(parse_result(&result(r#"{"value":[]}"#)).is_err());
    }
}
