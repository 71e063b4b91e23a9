//! The per-VM results cryptoctl prints, and how a remote result becomes one (pure). The JSON form
//! of [`VmHealth`] is the documented, stable `cryptoctl health --output json` schema.

use serde::Serialize;
use serde_json::Value;

use crate::remote::{Frame, warning_text};

/// A health status, as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// All checks pass.
    Healthy,
    /// Something needs a look.
    Warning,
    /// The worker is down (or the VM is).
    Critical,
    /// Could not be determined.
    Unknown,
}

impl Status {
    /// Parses the agent's word.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "HEALTHY" => Status::Healthy,
            "WARNING" => Status::Warning,
            "CRITICAL" => Status::Critical,
            "UNKNOWN" => Status::Unknown,
            _ => return None,
        })
    }

    /// Severity for "the worst": CRITICAL > WARNING > UNKNOWN > HEALTHY (the agent's order).
    pub fn severity(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// Exit code: 0 HEALTHY, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "HEALTHY",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The worst of several (HEALTHY when there are none).
    pub fn worst(all: impl IntoIterator<Item = Status>) -> Status {
        all.into_iter()
            .max_by_key(|s| s.severity())
            .unwrap_or(Status::Healthy)
    }
}

/// What went wrong, when a VM's status is not the agent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `arm` (Azure), `unreachable` (transport), `agent` (missing or bad answer), `timeout`,
    /// `not-found`, `interrupted`; with `--source telemetry` also `silent` (no recent telemetry)
    /// and `telemetry` (unusable telemetry).
    pub kind: &'static str,
    /// For people.
    pub message: String,
}

/// Something cryptoctl did on the VM besides reading its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionTaken {
    /// `restart`.
    pub action: &'static str,
    /// `agent` or `systemctl`.
    pub via: Option<String>,
    /// The command's exit status.
    pub exit_code: Option<i32>,
    /// Whether it did what was asked.
    pub ok: bool,
    /// What the command said.
    pub message: String,
}

/// One VM's health: a row of the table, an element of the JSON array.
#[derive(Debug, Clone, Serialize)]
pub struct VmHealth {
    /// VM name.
    pub vm: String,
    /// Resource group.
    pub resource_group: String,
    /// Azure region.
    pub location: Option<String>,
    /// Power state code (`running`, `deallocated`, ...), when known.
    pub power_state: Option<String>,
    /// Overall status.
    pub status: Status,
    /// Why: the first alert, or what made the VM CRITICAL/UNKNOWN before its agent could answer.
    pub reason: Option<String>,
    /// `run-command` or `ssh` (`none` for a row from telemetry alone).
    pub transport: &'static str,
    /// With `--source telemetry`: `telemetry` (from the agents' Application Insights telemetry) or
    /// `agent` (asked over the transport by `--drill`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// With `--source telemetry`: the VM's resource id (VMs of one name in several resource groups
    /// or subscriptions are told apart by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Whether cryptobot-agent is installed (null: not asked).
    pub agent_installed: Option<bool>,
    /// Which agent command made the report: `status` (the running daemon) or `check`.
    pub report_source: Option<String>,
    /// The worker unit's state (`active`, `inactive`, `failed`, ...).
    pub service: Option<String>,
    /// Disk usage, percent.
    pub disk_usage_percent: Option<u64>,
    /// Memory usage, percent.
    pub memory_usage_percent: Option<u64>,
    /// Heartbeat age, seconds (-1: no heartbeat file).
    pub heartbeat_age_seconds: Option<i64>,
    /// Restarts counted by the agent.
    pub restarts: Option<u64>,
    /// Every alert of the report.
    pub alerts: Vec<String>,
    /// Restarts done by `--restart`.
    pub actions: Vec<ActionTaken>,
    /// Notes (e.g. the agent could not send alerts).
    pub warnings: Vec<String>,
    /// Set when the status is not the agent's own.
    pub error: Option<Problem>,
    /// The agent's report exactly as it printed it (`check --json` / `status --json`), or null.
    pub report: Option<Value>,
    /// Time spent on this VM, milliseconds.
    pub duration_ms: u64,
    /// With `--source telemetry`: the age of the newest availability result, seconds (0 for a
    /// drilled VM, null when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_age_seconds: Option<Option<u64>>,
}

impl VmHealth {
    /// A row for `vm` with nothing known yet.
    pub fn new(vm: &str, resource_group: &str, transport: &'static str) -> VmHealth {
        VmHealth {
            vm: vm.to_owned(),
            resource_group: resource_group.to_owned(),
            location: None,
            power_state: None,
            status: Status::Unknown,
            reason: None,
            transport,
            source: None,
            resource_id: None,
            agent_installed: None,
            report_source: None,
            service: None,
            disk_usage_percent: None,
            memory_usage_percent: None,
            heartbeat_age_seconds: None,
            restarts: None,
            alerts: Vec::new(),
            actions: Vec::new(),
            warnings: Vec::new(),
            error: None,
            report: None,
            duration_ms: 0,
            data_age_seconds: None,
        }
    }

    /// Marks the row as failed before the agent answered.
    pub fn fail(&mut self, status: Status, kind: &'static str, message: String) {
        self.status = status;
        self.reason = Some(message.clone());
        self.error = Some(Problem { kind, message });
    }

    /// Whether the worker is down (the case `--restart` handles): CRITICAL and the service not
    /// active or not running.
    pub fn service_down(&self) -> bool {
        self.status == Status::Critical
            && self.report.as_ref().is_some_and(|r| {
                r["service_active"] == Value::Bool(false)
                    || r["service_running"] == Value::Bool(false)
            })
    }

    /// Fills the row from a health (or restart) result.
    pub fn apply_frame(&mut self, frame: &Frame) {
        let installed = frame.get("agent") == Some("present");
        self.agent_installed = Some(installed);
        self.service = frame.get("worker").map(str::to_owned);
        if let Some(w) = frame.get("warning") {
            self.warnings.push(warning_text(w));
        }
        match frame.get("alert") {
            Some("unsupported") => self
                .warnings
                .push("this agent version cannot send alerts (no check --alert)".into()),
            Some("requested") => {}
            _ => {}
        }
        if !installed {
            let service = self.service.clone().unwrap_or_else(|| "unknown".into());
            self.fail(
                Status::Unknown,
                "agent",
                format!("cryptobot-agent is not installed (worker: {service})"),
            );
            return;
        }
        self.report_source = frame.get("source").map(str::to_owned);
        if let Some(level) = frame.get("report_trimmed") {
            let what = match level {
                "events" => "the event history left out",
                "detail" => "only the original fields kept",
                _ => "only the original fields kept, alert texts shortened",
            };
            self.warnings.push(format!(
                "the agent's report was trimmed to fit run-command's 4096-byte output ({what})"
            ));
        }
        let report = match frame.blob("report") {
            Ok(Some(text)) => text,
            Ok(None) => {
                let why = if frame.flag("dropped") {
                    "the agent's report did not fit run-command's 4096-byte output".to_owned()
                } else {
                    let stderr = frame.blob("stderr").ok().flatten().unwrap_or_default();
                    format!(
                        "the agent printed no report (exit {}){}",
                        frame.get("code").unwrap_or("?"),
                        last_line(&stderr)
                            .map(|l| format!(": {l}"))
                            .unwrap_or_default()
                    )
                };
                self.fail(Status::Unknown, "agent", why);
                return;
            }
            Err(e) => {
                self.fail(Status::Unknown, "agent", e.to_string());
                return;
            }
        };
        match serde_json::from_str::<Value>(&report) {
            Ok(v) if v.is_object() => self.apply_report(v),
            _ => self.fail(
                Status::Unknown,
                "agent",
                format!(
                    "the agent's report is not JSON: {}",
                    last_line(&report).unwrap_or("(empty)")
                ),
            ),
        }
    }

    /// Adds what `--check-updates` found: WARNING `Code is behind remote repository` with the
    /// number of commits, or UNKNOWN with the reason when the remote could not be asked.
    pub fn apply_updates(&mut self, frame: &Frame) {
        let reason = || frame.blob("updates_reason").ok().flatten();
        let (status, alert) = match frame.get("updates") {
            Some("behind") => {
                let n = frame.number("updates_behind").unwrap_or(0);
                let commits = if n == 1 { "commit" } else { "commits" };
                (
                    Status::Warning,
                    format!("Code is behind remote repository ({n} {commits})"),
                )
            }
            Some("unknown") => (
                Status::Unknown,
                format!(
                    "Update check failed: {}",
                    reason().unwrap_or_else(|| "no reason given".into())
                ),
            ),
            _ => return,
        };
        self.status = Status::worst([self.status, status]);
        if self.reason.is_none() || self.alerts.is_empty() {
            self.reason = Some(alert.clone());
        }
        self.alerts.push(alert);
    }

    fn apply_report(&mut self, v: Value) {
        self.status = v["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or(Status::Unknown);
        self.alerts = v["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        self.reason = self.alerts.first().cloned();
        self.error = None;
        if let Some(state) = v["unit"]["active_state"].as_str() {
            self.service = Some(state.to_owned());
        }
        self.disk_usage_percent = v["disk_usage_percent"].as_u64();
        self.memory_usage_percent = v["memory_usage_percent"].as_u64();
        self.heartbeat_age_seconds = v["heartbeat_age_seconds"].as_i64();
        self.restarts = v["crash_count"].as_u64();
        self.report = Some(v);
    }
}

/// The last non-empty line of `text`.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// The result of restart, pause or resume on one VM.
#[derive(Debug, Clone, Serialize)]
pub struct VmAction {
    /// VM name.
    pub vm: String,
    /// Resource group.
    pub resource_group: String,
    /// `restart`, `pause`, `resume`.
    pub action: &'static str,
    /// Whether it was done.
    pub ok: bool,
    /// `done`, `deferred`, `refused`, `failed`, `unsupported`, `unreachable`, `not-running`.
    pub outcome: &'static str,
    /// `agent` or `systemctl` (restart).
    pub via: Option<String>,
    /// The worker unit's state afterwards.
    pub service: Option<String>,
    /// What the agent (or systemctl) said, or what went wrong.
    pub message: String,
    /// Notes, e.g. the fallback to systemctl.
    pub warnings: Vec<String>,
    /// Time spent on this VM, milliseconds.
    pub duration_ms: u64,
}

impl VmAction {
    /// Exit code contribution: 0 done, 1 deferred/refused, 2 failed/unsupported/not running,
    /// 3 unreachable.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            "done" => 0,
            "deferred" | "refused" => 1,
            "unreachable" => 3,
            _ => 2,
        }
    }
}

/// A VM's journal tail.
#[derive(Debug, Clone, Serialize)]
pub struct VmLogs {
    /// VM name.
    pub vm: String,
    /// Resource group.
    pub resource_group: String,
    /// `worker` or `agent`.
    pub unit: &'static str,
    /// Lines returned.
    pub lines: Option<u64>,
    /// Fewer lines than asked because of run-command's output limit.
    pub truncated: bool,
    /// The journal text (`short-iso`).
    pub text: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::frame;

    #[test]
    fn worst_follows_the_agents_order() {
        use Status::*;
        assert_eq!(Status::worst([Healthy, Unknown, Warning]), Warning);
        assert_eq!(Status::worst([Unknown, Critical]), Critical);
        assert_eq!(Status::worst([Healthy, Unknown]), Unknown);
        assert_eq!(Status::worst([]), Healthy);
        assert_eq!(Critical.exit_code(), 2);
        assert_eq!(Unknown.exit_code(), 3);
    }

    #[test]
    fn report_fills_the_row() {
        let report = r#"{"status":"CRITICAL","service_active":false,"service_running":false,"crash_count":0,
            "disk_usage_percent":16,"memory_usage_percent":3,"heartbeat_age_seconds":-1,
            "alerts":["Service is not active","No heartbeat file found"],"unit":{"active_state":"inactive"}}"#;
        use base64::Engine as _;
        let out = format!(
            "CRYPTOCTL-RESULT v=1 action=health agent=present source=check code=2 worker=inactive report=b64:{}\nCRYPTOCTL-EXIT 2\n",
            base64::engine::general_purpose::STANDARD.encode(report)
        );
        let mut row = VmHealth::new("vm", "rg", "ssh");
        row.apply_frame(&frame::parse(&out).unwrap());
        assert_eq!(row.status, Status::Critical);
        assert_eq!(row.reason.as_deref(), Some("Service is not active"));
        assert_eq!(row.service.as_deref(), Some("inactive"));
        assert_eq!(row.heartbeat_age_seconds, Some(-1));
        assert!(row.service_down());
        assert_eq!(row.report_source.as_deref(), Some("check"));
    }

    #[test]
    fn missing_agent_is_unknown() {
        let out = "CRYPTOCTL-RESULT v=1 action=health agent=missing source=none code=3 worker=active\nCRYPTOCTL-EXIT 3\n";
        let mut row = VmHealth::new("vm", "rg", "ssh");
        row.apply_frame(&frame::parse(out).unwrap());
        assert_eq!(row.status, Status::Unknown);
        assert_eq!(
            row.reason.as_deref(),
            Some("cryptobot-agent is not installed (worker: active)")
        );
        assert_eq!(row.error.as_ref().unwrap().kind, "agent");
    }
}
