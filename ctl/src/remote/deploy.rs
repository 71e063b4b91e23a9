//! The deploy/rollback script and its arguments (pure). Every argument is a validated value, a
//! number, a flag or base64 text, passed as a run-command parameter or single-quoted for ssh; the
//! script compares, quotes or decodes them and never evaluates them.

use std::time::Duration;

use base64::Engine as _;

use crate::{storage::Secret, validate::shell_quote};

/// The script, as shipped to the VM.
pub const SCRIPT: &str = include_str!("deploy.sh");

/// The worker unit in `deploy/`, with the default user and checkout.
pub const WORKER_UNIT: &str = include_str!("../../../deploy/faucet_worker.service");
/// The agent unit in `deploy/`.
pub const AGENT_UNIT: &str = include_str!("../../../deploy/cryptobot-agent.service");
/// The agent's system user.
pub const SYSUSERS: &str = include_str!("../../../deploy/cryptobot-agent.sysusers");
/// The polkit rule.
pub const POLKIT_RULE: &str = include_str!("../../../deploy/cryptobot-agent.rules");
/// The worker's restart helper (for polkit 0.105): its path unit and its service.
pub const HELPER_PATH_UNIT: &str = include_str!("../../../deploy/cryptobot-worker-restart.path");
/// The restart helper's service.
pub const HELPER_SERVICE_UNIT: &str =
    include_str!("../../../deploy/cryptobot-worker-restart.service");
/// The annotated default configuration.
pub const AGENT_CONFIG: &str = include_str!("../../../deploy/agent.toml");

/// The checkout written in `deploy/faucet_worker.service`.
const DEFAULT_APP_DIR: &str = "/home/azureuser/Repositories/cryptobot";

/// Which way `.env`'s canary settings change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// Leave `.env` alone.
    Keep,
    /// Remove `CANARY_PROFILE=` and `CANARY_ONLY=`.
    Reset,
    /// Set `CANARY_PROFILE=<profile>` and `CANARY_ONLY=true`.
    Profile(CanaryProfile),
}

pub use crate::validate::{AgentUrl, CanaryProfile, CommitId, GitRef, RepoUrl, Sha256Hex};

/// Where the VM gets the agent binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// No agent install (`--skip-agent`, or a rollback).
    None,
    /// Downloaded by the VM.
    Url(AgentUrl),
    /// Already copied to this path on the VM (ssh).
    Uploaded(String),
    /// Downloaded by the VM from Azure Blob Storage: the blob's URL and its SAS (`None` until one
    /// is made for the VM, e.g. in a dry run). The SAS is only ever passed to the script.
    Blob {
        /// The blob's URL, without a query.
        url: String,
        /// The read-only SAS query.
        sas: Option<Secret>,
    },
}

/// What the agent arrives as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// The portable binary, installed as `/usr/local/bin/cryptobot-agent`.
    Binary,
    /// The Debian package, installed with `dpkg -i` (it owns `/usr/bin/cryptobot-agent`).
    Deb,
}

/// Everything one run of the script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    /// `deploy` or `rollback`.
    pub rollback: bool,
    /// The app user (validated POSIX name, not root).
    pub app_user: String,
    /// The bot's checkout (validated absolute path).
    pub app_dir: String,
    /// Where to clone from (needed only when the VM has no checkout yet).
    pub repo_url: Option<RepoUrl>,
    /// What to check out.
    pub git_ref: GitRef,
    /// Leave the bot alone.
    pub skip_app: bool,
    /// Leave the agent alone.
    pub skip_agent: bool,
    /// `.env` canary edit.
    pub canary: Canary,
    /// A `WatchdogSec` drop-in for the worker.
    pub worker_watchdog: Option<Duration>,
    /// The agent binary.
    pub agent: AgentSource,
    /// Its SHA-256.
    pub agent_sha256: Option<Sha256Hex>,
    /// Binary or package.
    pub agent_kind: AgentKind,
    /// The agent's configuration file.
    pub agent_config: String,
    /// Replace a locally edited configuration.
    pub force_config: bool,
    /// How long the health gate waits.
    pub gate_timeout: Duration,
    /// Rollback target (`None`: the commit before the last deploy).
    pub commit: Option<CommitId>,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The worker unit for `user` and `app_dir`: the shipped unit with its default paths replaced.
pub fn worker_unit(user: &str, app_dir: &str) -> String {
    WORKER_UNIT
        .lines()
        .map(|l| match l.split_once('=') {
            Some(("User", _)) => format!("User={user}"),
            Some(("Group", _)) => format!("Group={user}"),
            _ => l.replace(DEFAULT_APP_DIR, app_dir),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

impl DeployPlan {
    /// The positional arguments `$1..$23`, named; `budget` bytes of output (0: no limit).
    pub fn args(&self, budget: usize) -> Vec<(&'static str, String)> {
        let dash = || "-".to_owned();
        vec![
            (
                "mode",
                if self.rollback { "rollback" } else { "deploy" }.into(),
            ),
            ("appUser", self.app_user.clone()),
            ("appDir", self.app_dir.clone()),
            (
                "repoUrl",
                self.repo_url
                    .as_ref()
                    .map_or_else(dash, |u| u.as_str().to_owned()),
            ),
            ("ref", self.git_ref.as_str().to_owned()),
            ("skipApp", flag(self.skip_app)),
            ("skipAgent", flag(self.skip_agent)),
            (
                "canary",
                match &self.canary {
                    Canary::Keep => dash(),
                    Canary::Reset => "reset".into(),
                    Canary::Profile(p) => format!("profile:{p}"),
                },
            ),
            (
                "workerUnit",
                b64(&worker_unit(&self.app_user, &self.app_dir)),
            ),
            (
                "watchdog",
                self.worker_watchdog
                    .map_or(0, |d| d.as_secs().max(1))
                    .to_string(),
            ),
            (
                "agentSource",
                match &self.agent {
                    AgentSource::None => dash(),
                    AgentSource::Url(u) => format!("url:{}", u.as_str()),
                    AgentSource::Uploaded(p) => format!("file:{p}"),
                    AgentSource::Blob { url, sas } => {
                        format!("url:{url}?{}", sas.as_ref().map_or("***", Secret::expose))
                    }
                },
            ),
            (
                "agentSha256",
                self.agent_sha256
                    .as_ref()
                    .map_or_else(dash, |s| s.as_str().to_owned()),
            ),
            ("agentUnit", b64(AGENT_UNIT)),
            ("sysusers", b64(SYSUSERS)),
            ("polkitRule", b64(POLKIT_RULE)),
            ("agentConfig", b64(&self.agent_config)),
            ("forceConfig", flag(self.force_config)),
            (
                "gateTimeout",
                self.gate_timeout.as_secs().max(1).to_string(),
            ),
            (
                "commit",
                self.commit
                    .as_ref()
                    .map_or_else(dash, |c| c.as_str().to_owned()),
            ),
            ("budget", budget.to_string()),
            ("helperPath", b64(HELPER_PATH_UNIT)),
            ("helperService", b64(HELPER_SERVICE_UNIT)),
            (
                "agentKind",
                match self.agent_kind {
                    AgentKind::Binary => "bin",
                    AgentKind::Deb => "deb",
                }
                .into(),
            ),
        ]
    }

    /// The remote command for ssh: the script on stdin of `sh -s`, as root (`sudo -n` when the
    /// login is not root).
    pub fn ssh_remote_command(&self) -> String {
        let mut words = String::new();
        for (_, v) in self.args(0) {
            words.push(' ');
            words.push_str(&shell_quote(&v));
        }
        format!("if [ \"$(id -u)\" = 0 ]; then sh -s --{words}; else sudo -n sh -s --{words}; fi")
    }

    /// The plan in words, for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.rollback {
            if !self.skip_app {
                out.push(format!(
                    "roll the bot in {} back to {} as {}; reinstall its dependencies and unit; restart it",
                    self.app_dir,
                    self.commit
                        .as_ref()
                        .map_or("the commit before the last deploy", |c| c.as_str()),
                    self.app_user
                ));
            }
            if !self.skip_agent {
                out.push(
                    "agent: put /usr/local/bin/cryptobot-agent.previous back in place (copied next to it, then renamed: atomic), \
                     keep the replaced binary as the new .previous (running this again undoes it), restart cryptobot-agent.service"
                        .into(),
                );
            }
        } else if !self.skip_app {
            out.push(format!(
                "bot: as {} in {}: clone {} if missing, fetch, check out {}, venv + pip install -r requirements.txt",
                self.app_user,
                self.app_dir,
                self.repo_url
                    .as_ref()
                    .map_or("(no --repo-url)".to_owned(), |u| redact_url(u.as_str())),
                self.git_ref.as_str()
            ));
            match &self.canary {
                Canary::Keep => out.push(".env: unchanged".into()),
                Canary::Reset => out.push(".env: remove CANARY_PROFILE and CANARY_ONLY".into()),
                Canary::Profile(p) => {
                    out.push(format!(".env: CANARY_PROFILE={p}, CANARY_ONLY=true"));
                }
            }
            out.push(format!(
                "faucet_worker.service: install, daemon-reload, enable, restart{}",
                self.worker_watchdog.map_or(String::new(), |d| format!(
                    " (WatchdogSec={} drop-in)",
                    d.as_secs().max(1)
                ))
            ));
        }
        if !self.rollback && !self.skip_agent {
            let from = match &self.agent {
                AgentSource::None => "nowhere".to_owned(),
                AgentSource::Url(u) => redact_url(u.as_str()),
                AgentSource::Uploaded(_) => "an ssh upload".to_owned(),
                AgentSource::Blob { url, .. } => format!(
                    "{url}?*** (uploaded to Azure Blob Storage with your Entra token; each VM gets a read-only SAS for this blob, valid until shortly after the gate timeout)"
                ),
            };
            let sha = self.agent_sha256.as_ref().map_or("-", |s| s.as_str());
            let what = match self.agent_kind {
                AgentKind::Binary => format!(
                    "binary from {from} (sha256 {sha}), keeping the previous one as .previous; units, sysusers, polkit rule"
                ),
                AgentKind::Deb => format!(
                    "Debian package from {from} (sha256 {sha}, its architecture checked against the VM's), installed with dpkg -i (the previous package kept in /var/lib/cryptobot-deploy for rollback --agent)"
                ),
            };
            out.push(format!(
                "agent: {what}; agent.toml {}; agent.env with the alerting variables of .env",
                if self.force_config {
                    "replaced"
                } else {
                    "installed unless edited locally"
                }
            ));
        }
        out.push(format!(
            "health gate: up to {}s for the agent to report the worker active with a heartbeat newer than the restart; {}",
            self.gate_timeout.as_secs(),
            if self.rollback {
                "exit non-zero otherwise"
            } else {
                "otherwise roll back what changed and exit non-zero"
            }
        ));
        out
    }
}

/// A URL with its `user:password@` replaced by `***@` and a SAS query (one with `sig=`) by `***`,
/// for printing.
pub fn redact_url(value: &str) -> String {
    if let Some((before, query)) = value.split_once('?')
        && query.split('&').any(|p| p.starts_with("sig="))
    {
        return format!("{}?***", redact_url(before));
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => value.to_owned(),
    }
}

/// The script as run-command wants it: a list of lines.
pub fn script_lines() -> Vec<String> {
    SCRIPT.lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> DeployPlan {
        DeployPlan {
            rollback: false,
            app_user: "azureuser".into(),
            app_dir: "/home/azureuser/Repositories/cryptobot".into(),
            repo_url: Some("https://github.com/example/cryptobot.git".parse().unwrap()),
            git_ref: "master".parse().unwrap(),
            skip_app: false,
            skip_agent: false,
            canary: Canary::Keep,
            worker_watchdog: None,
            agent: AgentSource::Url("https://example.com/cryptobot-agent".parse().unwrap()),
            agent_sha256: Some("ab".repeat(32).parse().unwrap()),
            agent_kind: AgentKind::Binary,
            agent_config: AGENT_CONFIG.into(),
            force_config: false,
            gate_timeout: Duration::from_secs(300),
            commit: None,
        }
    }

    #[test]
    fn twenty_three_positional_arguments_in_the_scripts_order() {
        let args = plan().args(4000);
        assert_eq!(args.len(), 23);
        assert_eq!(args[22].1, "bin");
        let v: Vec<&str> = args.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(v[0], "deploy");
        assert_eq!(v[4], "master");
        assert_eq!(v[7], "-");
        assert_eq!(v[9], "0");
        assert_eq!(v[10], "url:https://example.com/cryptobot-agent");
        assert_eq!(v[17], "300");
        assert_eq!(v[18], "-");
        assert_eq!(v[19], "4000");
        let unit = base64::engine::general_purpose::STANDARD
            .decode(&args[8].1)
            .unwrap();
        assert_eq!(String::from_utf8(unit).unwrap(), WORKER_UNIT);
    }

    #[test]
    fn canary_and_rollback_arguments() {
        let mut p = plan();
        p.canary = Canary::Profile("fast-1".parse().unwrap());
        p.rollback = true;
        p.commit = Some("ABCDEF1".parse().unwrap());
        p.worker_watchdog = Some(Duration::from_millis(10));
        let args = p.args(0);
        assert_eq!(args[0].1, "rollback");
        assert_eq!(args[7].1, "profile:fast-1");
        assert_eq!(args[9].1, "1");
        assert_eq!(args[18].1, "abcdef1");
        p.canary = Canary::Reset;
        assert_eq!(p.args(0)[7].1, "reset");
    }

    #[test]
    fn hostile_values_are_rejected() {
        for bad in [
            "x'; touch /tmp/pwned; '",
            "a\nb",
            "",
            "a b",
            "$(id)",
            &"x".repeat(65),
        ] {
            assert!(bad.parse::<CanaryProfile>().is_err(), "{bad:?}");
        }
        for bad in [
            "-upload-pack=id",
            "a..b",
            "x;id",
            "/abs",
            "a b",
            "$(id)",
            "a\nb",
        ] {
            assert!(bad.parse::<GitRef>().is_err(), "{bad:?}");
        }
        for bad in ["HEAD~1", "abc", "g123456", "a'b"] {
            assert!(bad.parse::<CommitId>().is_err(), "{bad:?}");
        }
        for bad in [
            "-oProxyCommand=id",
            "ext::sh -c id",
            "https://x/y z",
            "https://x/'",
            "relative",
        ] {
            assert!(bad.parse::<RepoUrl>().is_err(), "{bad:?}");
        }
        for bad in ["ftp://x", "http://x/$(id)", "file://relative"] {
            assert!(bad.parse::<AgentUrl>().is_err(), "{bad:?}");
        }
        assert!("release/1.2".parse::<GitRef>().is_ok());
        assert!("git@host:org/bot.git".parse::<RepoUrl>().is_err());
        assert!("ssh://git@host/org/bot.git".parse::<RepoUrl>().is_ok());
    }

    #[test]
    fn worker_unit_follows_user_and_app_dir() {
        let u = worker_unit("bot", "/srv/bot");
        assert!(u.contains("\nUser=bot\n"));
        assert!(u.contains("\nGroup=bot\n"));
        assert!(u.contains("WorkingDirectory=/srv/bot\n"));
        assert!(u.contains("ExecStart=/srv/bot/.venv/bin/python main.py\n"));
        assert!(!u.contains("azureuser"));
    }

    #[test]
    fn ssh_command_quotes_every_argument_and_uses_sudo_only_when_needed() {
        let cmd = plan().ssh_remote_command();
        assert!(cmd.starts_with("if [ \"$(id -u)\" = 0 ]; then sh -s -- 'deploy' 'azureuser'"));
        assert!(cmd.contains("else sudo -n sh -s -- 'deploy'"));
    }

    #[test]
    fn script_frames_its_result_and_never_evals() {
        assert!(SCRIPT.starts_with("#!/bin/sh\n"));
        assert!(!SCRIPT.contains("eval "));
        assert!(SCRIPT.contains("printf 'CRYPTOCTL-EXIT %s\\n' \"$rc\""));
        assert!(!SCRIPT.contains("sed "));
        assert!(!SCRIPT.contains("HEAD~1"));
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:tok@github.com/x/y.git"),
            "https://***@github.com/x/y.git"
        );
        assert_eq!(
            redact_url("https://github.com/x/y.git"),
            "https://github.com/x/y.git"
        );
        assert_eq!(redact_url("master"), "master");
        assert_eq!(
            redact_url("url:https://a.blob.core.windows.net/c/b?sp=r&sig=abc%2B"),
            "url:https://a.blob.core.windows.net/c/b?***"
        );
        let mut p = plan();
        p.repo_url = Some("https://u:tok@example.com/b.git".parse().unwrap());
        assert!(!p.describe().join("\n").contains("tok"));
    }

    #[test]
    fn script_is_valid_posix_sh() {
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", SCRIPT])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn rollback_of_the_agent_alone_or_with_the_bot() {
        let mut p = plan();
        p.rollback = true;
        p.skip_agent = true;
        let text = p.describe().join("\n");
        assert!(text.contains("roll the bot"), "{text}");
        assert!(!text.contains(".previous"), "{text}");
        p.skip_agent = false;
        let text = p.describe().join("\n");
        assert!(text.contains("roll the bot"), "{text}");
        assert!(
            text.contains("cryptobot-agent.previous back in place"),
            "{text}"
        );
        p.skip_app = true;
        let text = p.describe().join("\n");
        assert!(!text.contains("roll the bot"), "{text}");
        assert!(text.contains(".previous back in place"), "{text}");
        let args = p.args(0);
        assert_eq!((args[5].1.as_str(), args[6].1.as_str()), ("1", "0"));
    }

    #[test]
    fn a_blob_source_hides_its_sas_except_from_the_script() {
        let mut p = plan();
        p.agent = AgentSource::Blob {
            url: "https://a.blob.core.windows.net/c/b".into(),
            sas: Some(Secret::new("sp=r&sig=SECRETSIG".into())),
        };
        p.agent_kind = AgentKind::Deb;
        assert!(!format!("{p:?}").contains("SECRETSIG"));
        let text = p.describe().join("\n");
        assert!(
            !text.contains("SECRETSIG") && text.contains("dpkg -i"),
            "{text}"
        );
        let args = p.args(0);
        assert_eq!(
            args[10].1,
            "url:https://a.blob.core.windows.net/c/b?sp=r&sig=SECRETSIG"
        );
        assert_eq!(args[22].1, "deb");
        assert!(!redact_url(&args[10].1).contains("SECRETSIG"));
    }

    #[test]
    fn plan_words_say_what_changes() {
        let mut p = plan();
        p.canary = Canary::Profile("p1".parse().unwrap());
        let text = p.describe().join("\n");
        assert!(text.contains("CANARY_PROFILE=p1"));
        assert!(text.contains("health gate: up to 300s"));
        p.skip_app = true;
        assert!(!p.describe().join("\n").contains("bot:"));
    }
}
