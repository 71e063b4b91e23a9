//! Running the remote script on a VM over either transport, one round trip per action:
//! run-command (the script as its lines, the arguments as parameters) or the system `ssh` client
//! (the script on stdin of `sh -s`, the arguments shell-quoted). Both give back the script's
//! stdout, parsed by [`frame`] into the result fields.

pub mod frame;
pub mod script;

use std::{path::PathBuf, process::Stdio, time::Instant};

use tokio::io::AsyncWriteExt as _;

use crate::{
    arm::{ArmClient, ArmError, RunCommandInput, RunCommandParameter, VirtualMachine},
    cli::TransportKind,
    validate::{AgentPath, Host, SshUser},
};

pub use frame::{Frame, FrameError};
pub use script::{Action, Invocation};

/// How the system ssh client is called.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The client command and its own arguments (`--ssh-command`, split on whitespace).
    pub command: Vec<String>,
    /// Login name.
    pub user: SshUser,
    /// Private key.
    pub key: Option<PathBuf>,
    /// Address override (single VM).
    pub host: Option<Host>,
}

/// Runs actions on VMs.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Resource Manager (run-command, and the address lookup for ssh).
    pub arm: ArmClient,
    /// Which transport.
    pub transport: TransportKind,
    /// ssh settings.
    pub ssh: SshSettings,
    /// The agent's path on the VMs.
    pub agent: AgentPath,
}

/// The action could not be carried out on the VM (the VM counts as unreachable).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Resource Manager failed (run-command, or the address lookup).
    #[error(transparent)]
    Arm(#[from] ArmError),
    /// ssh could not connect or log in.
    #[error("ssh to {host} failed: {message}")]
    Ssh {
        /// Where.
        host: String,
        /// ssh's own words.
        message: String,
    },
    /// The ssh client could not be started.
    #[error("cannot run {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// The output carried no usable result.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Out of time.
    #[error("no answer within the time allowed")]
    Timeout,
}

impl RemoteError {
    /// Whether the time allowed ran out (rather than something failing).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            RemoteError::Timeout | RemoteError::Arm(ArmError::Timeout(_))
        )
    }
}

impl Remote {
    /// Runs `action` on `vm` until `deadline`.
    pub async fn run(
        &self,
        vm: &VirtualMachine,
        action: &Action,
        deadline: Instant,
    ) -> Result<Frame, RemoteError> {
        match self.transport {
            TransportKind::RunCommand => {
                let inv = Invocation::new(action, &self.agent, script::RUN_COMMAND_BUDGET);
                let input = RunCommandInput {
                    command_id: "RunShellScript".into(),
                    script: Invocation::script_lines(),
                    parameters: inv
                        .args
                        .iter()
                        .map(|(n, v)| RunCommandParameter {
                            name: (*n).to_owned(),
                            value: v.clone(),
                        })
                        .collect(),
                };
                let out = self.arm.run_shell_script(&vm.id, &input, deadline).await?;
                Ok(
                    frame::parse(&out.stdout).map_err(|e| match (&e, &out.extension_message) {
                        (FrameError::NoExit(_) | FrameError::NoResult(_), Some(m)) => {
                            FrameError::NoExit(format!("{m}\n{}", out.stderr))
                        }
                        _ => e,
                    })?,
                )
            }
            TransportKind::Ssh => {
                let host = match &self.ssh.host {
                    Some(h) => h.as_str().to_owned(),
                    None => self.arm.ssh_address(vm, deadline).await?,
                };
                // An address from Azure is still checked before it reaches the ssh command line.
                let host: Host = host.parse().map_err(|e| RemoteError::Ssh {
                    host: host.clone(),
                    message: format!("{e}"),
                })?;
                self.ssh(&host, action, deadline).await
            }
        }
    }

    async fn ssh(
        &self,
        host: &Host,
        action: &Action,
        deadline: Instant,
    ) -> Result<Frame, RemoteError> {
        let inv = Invocation::new(action, &self.agent, 0);
        let (program, pre) = self
            .ssh
            .command
            .split_first()
            .map(|(p, r)| (p.clone(), r.to_vec()))
            .unwrap_or_else(|| ("ssh".to_owned(), Vec::new()));
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&pre)
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"])
            .args(["-o", "ServerAliveInterval=15", "-T"]);
        if let Some(key) = &self.ssh.key {
            cmd.arg("-i").arg(key);
        }
        cmd.arg("-l")
            .arg(self.ssh.user.as_str())
            .arg("--")
            .arg(host.as_str())
            .arg(inv.ssh_remote_command())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| RemoteError::Spawn {
            program: program.clone(),
            message: e.to_string(),
        })?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let work = async move {
            // A closed connection shows up as ssh's exit status; a failed write is not the story.
            let _ = stdin.write_all(script::SCRIPT.as_bytes()).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let out = tokio::time::timeout(remaining, work)
            .await
            .map_err(|_| RemoteError::Timeout)?
            .map_err(|e| RemoteError::Spawn {
                program,
                message: e.to_string(),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match frame::parse(&stdout) {
            Ok(f) => Ok(f),
            Err(e) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.code() == Some(255) || stdout.trim().is_empty() {
                    Err(RemoteError::Ssh {
                        host: host.as_str().to_owned(),
                        message: stderr
                            .lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or("no output")
                            .trim()
                            .to_owned(),
                    })
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

/// What a warning token of the script means.
pub fn warning_text(token: &str) -> String {
    match token {
        "no-agent" => "cryptobot-agent is not installed on the VM".into(),
        "agent-unreachable" => "the agent is installed but not running".into(),
        "agent-without-restart" => "this agent version has no restart command".into(),
        "agent-without-pause" => "this agent version has no pause command".into(),
        "agent-without-resume" => "this agent version has no resume command".into(),
        "agent-failed" => "the agent failed to carry out the request".into(),
        other => other.replace('-', " "),
    }
}
