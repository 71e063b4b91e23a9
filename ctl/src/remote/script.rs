//! The remote script and its arguments (pure). One script does every action in a single round trip;
//! its arguments are validated values and small numbers, passed as run-command parameters
//! (positional `$1..`) or as single-quoted words over ssh; the script never evaluates them.

use std::time::Duration;

use crate::validate::{AgentPath, shell_quote};

/// The script, as shipped to the VM.
pub const SCRIPT: &str = include_str!("script.sh");

/// Output budget for run-command, whose Linux result keeps only the last 4096 bytes of stdout:
/// the result line must fit with room for the `CRYPTOCTL-EXIT` line.
pub const RUN_COMMAND_BUDGET: usize = 4000;

/// `health --check-updates`: whose checkout, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateCheck {
    /// The app user (validated), who runs git.
    pub user: String,
    /// The checkout (validated absolute path).
    pub dir: String,
}

/// What the script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The agent's report (`status --json`, else `check --json`; `check --alert --json` with
    /// `alert`).
    Health {
        /// Have the agent send its alerts.
        alert: bool,
        /// Compare the checkout with its remote.
        updates: Option<UpdateCheck>,
    },
    /// Restart the worker through the agent (`systemctl restart` without one), then report.
    Restart {
        /// Ignore the agent's backoff.
        force: bool,
    },
    /// `cryptobot-agent pause [--for Ns]`.
    Pause {
        /// How long; `None` until resumed.
        duration: Option<Duration>,
    },
    /// `cryptobot-agent resume`.
    Resume,
    /// A bounded journal tail.
    Logs {
        /// `worker` or `agent`.
        unit: &'static str,
        /// Only entries newer than this.
        since: Option<Duration>,
        /// At most this many lines.
        lines: u32,
        /// syslog priority 0-7.
        priority: Option<u8>,
    },
}

impl Action {
    /// The action's word in the script.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Health { .. } => "health",
            Action::Restart { .. } => "restart",
            Action::Pause { .. } => "pause",
            Action::Resume => "resume",
            Action::Logs { .. } => "logs",
        }
    }
}

/// One invocation of the script: its positional arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `$1..`, in order.
    pub args: Vec<(&'static str, String)>,
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

fn seconds(d: Option<Duration>) -> String {
    // at least 1 s when set, so a sub-second value does not mean "no limit"
    d.map_or(0, |d| d.as_secs().max(1)).to_string()
}

impl Invocation {
    /// The arguments of `action` with the agent at `agent`; `budget` bytes of output (0: no limit).
    pub fn new(action: &Action, agent: &AgentPath, budget: usize) -> Invocation {
        let mut args = vec![
            ("action", action.name().to_owned()),
            ("agent", agent.as_str().to_owned()),
            ("budget", budget.to_string()),
        ];
        match action {
            Action::Health { alert, updates } => {
                args.push(("alert", flag(*alert)));
                let (user, dir) = updates
                    .as_ref()
                    .map_or(("-", "-"), |u| (u.user.as_str(), u.dir.as_str()));
                args.push(("updatesUser", user.to_owned()));
                args.push(("updatesDir", dir.to_owned()));
            }
            Action::Restart { force } => args.push(("force", flag(*force))),
            Action::Pause { duration } => args.push(("seconds", seconds(*duration))),
            Action::Resume => {}
            Action::Logs {
                unit,
                since,
                lines,
                priority,
            } => {
                args.push(("unit", (*unit).to_owned()));
                args.push(("since", seconds(*since)));
                args.push(("lines", lines.to_string()));
                args.push((
                    "priority",
                    priority.map_or_else(|| "-".to_owned(), |p| p.min(7).to_string()),
                ));
            }
        }
        Invocation { args }
    }

    /// The remote command for ssh: `sh -s -- 'arg'...` (the script goes on stdin).
    pub fn ssh_remote_command(&self) -> String {
        let mut cmd = String::from("sh -s --");
        for (_, v) in &self.args {
            cmd.push(' ');
            cmd.push_str(&shell_quote(v));
        }
        cmd
    }

    /// The script as run-command wants it: a list of lines.
    pub fn script_lines() -> Vec<String> {
        SCRIPT.lines().map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentPath {
        "/usr/local/bin/cryptobot-agent".parse().unwrap()
    }

    #[test]
    fn arguments_are_positional_and_plain() {
        let inv = Invocation::new(
            &Action::Health {
                alert: true,
                updates: None,
            },
            &agent(),
            4000,
        );
        let values: Vec<&str> = inv.args.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "health",
                "/usr/local/bin/cryptobot-agent",
                "4000",
                "1",
                "-",
                "-"
            ]
        );
        let inv = Invocation::new(
            &Action::Health {
                alert: false,
                updates: Some(UpdateCheck {
                    user: "azureuser".into(),
                    dir: "/srv/bot".into(),
                }),
            },
            &agent(),
            0,
        );
        assert_eq!(
            inv.args[3..]
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>(),
            ["0", "azureuser", "/srv/bot"]
        );
        let inv = Invocation::new(
            &Action::Logs {
                unit: "worker",
                since: Some(Duration::from_secs(3600)),
                lines: 200,
                priority: Some(3),
            },
            &agent(),
            0,
        );
        let values: Vec<&str> = inv.args.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values[3..], ["worker", "3600", "200", "3"]);
        let inv = Invocation::new(&Action::Pause { duration: None }, &agent(), 0);
        assert_eq!(inv.args[3].1, "0");
    }

    #[test]
    fn ssh_command_quotes_every_word() {
        let inv = Invocation::new(&Action::Restart { force: false }, &agent(), 0);
        assert_eq!(
            inv.ssh_remote_command(),
            "sh -s -- 'restart' '/usr/local/bin/cryptobot-agent' '0' '0'"
        );
    }

    #[test]
    fn script_ends_with_the_frame_and_never_evals() {
        assert!(SCRIPT.starts_with("#!/bin/sh\n"));
        assert!(!SCRIPT.contains("eval "));
        assert!(SCRIPT.contains("printf 'CRYPTOCTL-EXIT %s\\n' \"$rc\""));
        assert!(Invocation::script_lines().len() > 50);
    }
}
