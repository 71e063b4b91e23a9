//! Running the remote script on a VM over either transport, one round trip per action:
//! run-command (the script as its lines, the arguments as parameters) or the system `ssh` client
//! (the script on stdin of `sh -s`, the arguments shell-quoted). Both give back the script's
//! stdout, parsed by [`frame`] into the result fields. [`Remote::run_script`] is the one way to do
//! that for any framed script; [`Remote::run`] runs the action script through it.

pub mod deploy;
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
pub use script::{Action, Invocation, UpdateCheck};

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
    /// Runs `action` on `vm` until `deadline`: the action script through [`Remote::run_script`],
    /// its output limited to [`script::RUN_COMMAND_BUDGET`] over run-command and unlimited over ssh.
    pub async fn run(
        &self,
        vm: &VirtualMachine,
        action: &Action,
        deadline: Instant,
    ) -> Result<Frame, RemoteError> {
        let args = Invocation::new(action, &self.agent, script::RUN_COMMAND_BUDGET).args;
        let ssh_command = Invocation::new(action, &self.agent, 0).ssh_remote_command();
        self.run_script(vm, script::SCRIPT, &args, &ssh_command, deadline)
            .await
    }

    /// The address ssh connects to for `vm`: `--host`, else Azure's, validated.
    pub async fn ssh_host(
        &self,
        vm: &VirtualMachine,
        deadline: Instant,
    ) -> Result<Host, RemoteError> {
        let host = match &self.ssh.host {
            Some(h) => h.as_str().to_owned(),
            None => self.arm.ssh_address(vm, deadline).await?,
        };
        // An address from Azure is still checked before it reaches the ssh command line.
        host.parse().map_err(|e| RemoteError::Ssh {
            host: host.clone(),
            message: format!("{e}"),
        })
    }

    /// Runs `script` (any framed script) on `vm` until `deadline` and parses its framed stdout: over
    /// run-command with `args` as its parameters, or over ssh to [`Remote::ssh_host`] with
    /// `ssh_command` as the remote command and the script on its stdin (`args` unused).
    pub async fn run_script(
        &self,
        vm: &VirtualMachine,
        script: &str,
        args: &[(&'static str, String)],
        ssh_command: &str,
        deadline: Instant,
    ) -> Result<Frame, RemoteError> {
        match self.transport {
            TransportKind::RunCommand => {
                let input = RunCommandInput {
                    command_id: "RunShellScript".into(),
                    script: script.lines().map(str::to_owned).collect(),
                    parameters: args
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
                let host = self.ssh_host(vm, deadline).await?;
                self.ssh_script(&host, ssh_command, script, deadline).await
            }
        }
    }

    /// Copies `data` to a new private temporary file on `host` over ssh; returns its path.
    pub async fn ssh_upload(
        &self,
        host: &Host,
        data: Vec<u8>,
        deadline: Instant,
    ) -> Result<String, RemoteError> {
        let out = self
            .ssh_exec(
                host,
                "umask 077; f=$(mktemp /tmp/cryptobot-agent.XXXXXXXX) && cat >\"$f\" && printf '%s\\n' \"$f\"",
                data,
                deadline,
            )
            .await?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let valid = path.starts_with("/tmp/cryptobot-agent.")
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
        if !out.status.success() || !valid {
            return Err(RemoteError::Ssh {
                host: host.as_str().to_owned(),
                message: format!(
                    "upload failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(path)
    }

    async fn ssh_exec(
        &self,
        host: &Host,
        remote_command: &str,
        input: Vec<u8>,
        deadline: Instant,
    ) -> Result<std::process::Output, RemoteError> {
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
            .arg(remote_command)
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
            let _ = stdin.write_all(&input).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, work)
            .await
            .map_err(|_| RemoteError::Timeout)?
            .map_err(|e| RemoteError::Spawn {
                program,
                message: e.to_string(),
            })
    }

    async fn ssh_script(
        &self,
        host: &Host,
        remote_command: &str,
        script: &str,
        deadline: Instant,
    ) -> Result<Frame, RemoteError> {
        let out = self
            .ssh_exec(host, remote_command, script.as_bytes().to_vec(), deadline)
            .await?;
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
