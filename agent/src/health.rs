//! The health vocabulary every part of the agent speaks: a [`Status`], an [`Alert`] (a kind and the
//! original text), and a [`CheckOutcome`] (one check's status, value, threshold and alert). It
//! imports nothing of the agent, so checks, alerts and front ends can all use it without an import
//! loop through the decision core (`evaluate`).

use serde::Serialize;

/// Overall or per-check health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Everything checked is fine.
    Healthy,
    /// Something could not be checked, and nothing else is wrong.
    Unknown,
    /// Something needs attention.
    Warning,
    /// The worker is down or the disk is full.
    Critical,
}

impl Status {
    fn rank(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The upper-case word of the original reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "HEALTHY",
            Status::Unknown => "UNKNOWN",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
        }
    }

    /// Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Healthy => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: a stable kind (for deduplication; it carries no numbers) and the text people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// e.g. `disk_high`, `crash_loop`, `service_down`.
    pub kind: String,
    /// e.g. `Disk usage high: 81%`.
    pub text: String,
}

impl Alert {
    /// An alert of this kind with this text.
    pub fn new(kind: &str, text: impl Into<String>) -> Alert {
        Alert {
            kind: kind.to_owned(),
            text: text.into(),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// `service`, `restarts`, `disk:/`, `memory`, `heartbeat`, `journal`.
    pub name: String,
    /// This check's status.
    pub status: Status,
    /// The reading, for people (`41%`, `3s`, `active (running)`); absent when unknown.
    pub value: Option<String>,
    /// What the reading is compared with.
    pub threshold: Option<String>,
    /// The alert this check raised, if any.
    pub alert: Option<Alert>,
}

impl CheckOutcome {
    /// A healthy outcome with no value yet.
    pub fn new(name: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            name: name.into(),
            status: Status::Healthy,
            value: None,
            threshold: None,
            alert: None,
        }
    }

    /// Sets the reading.
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets the threshold description.
    pub fn threshold(mut self, threshold: impl Into<String>) -> Self {
        self.threshold = Some(threshold.into());
        self
    }

    /// Raises an alert with this status.
    pub fn alert(mut self, status: Status, alert: Alert) -> Self {
        self.status = status;
        self.alert = Some(alert);
        self
    }

    /// The check could not be made.
    pub fn unknown(self, kind: &str, text: String) -> Self {
        self.alert(Status::Unknown, Alert::new(kind, text))
    }
}
