//! The alert rules, generated from one table ([`RULES`]), and the ARM bodies of the action group
//! and the log alert rules (`Microsoft.Insights/scheduledQueryRules`, `kind: LogAlert`).
//!
//! The queries use exactly what `cryptobot-agent` sends to Application Insights: its custom metric
//! names (`health.*`), the cloud role `cryptobot-agent` and the role instance (the VM's host name),
//! which Application Insights stores as `customMetrics`/`availabilityResults` with
//! `cloud_RoleName`/`cloud_RoleInstance`, and a workspace-based resource's Log Analytics workspace
//! as `AppMetrics`/`AppAvailabilityResults` with `AppRoleName`/`AppRoleInstance`. Every rule is
//! split per VM by the role instance (`dimensions`), so each VM fires and resolves on its own.

use serde_json::{Value, json};

use crate::validate::alerts::{EmailAddress, LogicAppReceiver, ScopeId, ScopeKind, WebhookUrl};

/// The tag every resource cryptoctl writes carries; `delete` removes only resources with it.
pub const MANAGED_TAG: (&str, &str) = ("managed-by", "cryptoctl");
/// The agent's `ai.cloud.role`.
pub const CLOUD_ROLE: &str = "cryptobot-agent";
/// The action group's name after the prefix.
pub const ACTION_GROUP_SUFFIX: &str = "alerts";

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// No availability result from a VM for `silent_minutes`, among the VMs seen in the last
    /// `lookback_days` (a silent VM produces no rows, so the query looks further back for the
    /// VMs there are and keeps those whose last result is too old).
    Silent {
        /// How long without a result is silent.
        silent_minutes: u32,
        /// How far back VMs are remembered (at most 2 days: the longest query time range).
        lookback_days: u32,
    },
    /// A custom metric of the agent, aggregated per VM over the window and compared.
    Metric {
        /// The metric's name as the agent sends it.
        name: &'static str,
        /// `Maximum`, `Minimum`, `Average`, `Total`.
        aggregation: &'static str,
        /// `GreaterThan`, `LessThan`, ...
        operator: &'static str,
        /// The threshold.
        threshold: f64,
    },
}

/// One alert rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleSpec {
    /// The name after the prefix.
    pub slug: &'static str,
    /// Shown in the portal and in the alert (`essentials.alertRule` is the name).
    pub title: &'static str,
    /// What it means and what to do.
    pub description: &'static str,
    /// 0 (critical) to 4 (verbose).
    pub severity: u8,
    /// How often it runs (ISO 8601).
    pub frequency: &'static str,
    /// The window aggregated per run (ISO 8601); longer than the frequency so a point delayed
    /// by ingestion is still seen.
    pub window: &'static str,
    /// Actions are not repeated for this long after the alert fired.
    pub mute: &'static str,
    /// What it looks at.
    pub signal: Signal,
}

/// The rules `deploy` writes.
pub const RULES: [RuleSpec; 5] = [
    RuleSpec {
        slug: "vm-silent",
        title: "VM silent",
        description: "No availability result from this VM's cryptobot-agent for 10 minutes: the \
                      agent is dead, the VM is stopped or deallocated, or its network is gone. \
                      VMs silent for more than 2 days are no longer reported.",
        severity: 1,
        frequency: "PT5M",
        window: "PT10M",
        mute: "PT1H",
        signal: Signal::Silent {
            silent_minutes: 10,
            lookback_days: 2,
        },
    },
    RuleSpec {
        slug: "worker-down",
        title: "Worker down",
        description: "faucet_worker has not been active on this VM for the whole window \
                      (health.service_active below 1).",
        severity: 1,
        frequency: "PT5M",
        window: "PT10M",
        mute: "PT1H",
        signal: Signal::Metric {
            name: "health.service_active",
            aggregation: "Maximum",
            operator: "LessThan",
            threshold: 1.0,
        },
    },
    RuleSpec {
        slug: "crash-loop",
        title: "Crash loop",
        description: "The worker crashed more than 5 times (health.crash_count above 5).",
        severity: 2,
        frequency: "PT5M",
        window: "PT15M",
        mute: "PT1H",
        signal: Signal::Metric {
            name: "health.crash_count",
            aggregation: "Maximum",
            operator: "GreaterThan",
            threshold: 5.0,
        },
    },
    RuleSpec {
        slug: "disk-critical",
        title: "Disk critical",
        description: "A watched disk is more than 90% full (health.disk_usage above 90).",
        severity: 1,
        frequency: "PT5M",
        window: "PT15M",
        mute: "PT6H",
        signal: Signal::Metric {
            name: "health.disk_usage",
            aggregation: "Maximum",
            operator: "GreaterThan",
            threshold: 90.0,
        },
    },
    RuleSpec {
        slug: "heartbeat-stale",
        title: "Heartbeat stale",
        description: "The bot's heartbeat is older than 5 minutes (health.heartbeat_age above \
                      300 s): it is running but stuck.",
        severity: 2,
        frequency: "PT5M",
        window: "PT10M",
        mute: "PT1H",
        signal: Signal::Metric {
            name: "health.heartbeat_age",
            aggregation: "Maximum",
            operator: "GreaterThan",
            threshold: 300.0,
        },
    },
];

/// Table and column names of the agent's telemetry where the rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Custom metrics.
    pub metrics: &'static str,
    /// Availability results.
    pub availability: &'static str,
    /// The time of a row.
    pub time: &'static str,
    /// A metric's name.
    pub name: &'static str,
    /// A metric's value (the agent sends one point per item, so it is the point's value).
    pub value: &'static str,
    /// `ai.cloud.role`.
    pub role: &'static str,
    /// `ai.cloud.roleInstance`: the VM's host name; the rules split by it.
    pub instance: &'static str,
}

/// Application Insights (the component's own query surface).
pub const APP_INSIGHTS_SCHEMA: Schema = Schema {
    metrics: "customMetrics",
    availability: "availabilityResults",
    time: "timestamp",
    name: "name",
    value: "value",
    role: "cloud_RoleName",
    instance: "cloud_RoleInstance",
};

/// The Log Analytics workspace of a workspace-based Application Insights resource.
pub const WORKSPACE_SCHEMA: Schema = Schema {
    metrics: "AppMetrics",
    availability: "AppAvailabilityResults",
    time: "TimeGenerated",
    name: "Name",
    value: "Max",
    role: "AppRoleName",
    instance: "AppRoleInstance",
};

impl Schema {
    /// The schema of a scope.
    pub fn of(kind: ScopeKind) -> Schema {
        match kind {
            ScopeKind::AppInsights => APP_INSIGHTS_SCHEMA,
            ScopeKind::Workspace => WORKSPACE_SCHEMA,
        }
    }
}

impl RuleSpec {
    /// The rule's KQL query.
    pub fn query(&self, s: &Schema) -> String {
        match self.signal {
            Signal::Silent {
                silent_minutes,
                lookback_days,
            } => format!(
                "{table}\n| where {time} > ago({lookback_days}d)\n| where {role} == \"{CLOUD_ROLE}\"\n\
                 | summarize LastSeen = max({time}) by {instance}\n| where LastSeen < ago({silent_minutes}m)",
                table = s.availability,
                time = s.time,
                role = s.role,
                instance = s.instance,
            ),
            Signal::Metric { name, .. } => format!(
                "{table}\n| where {name_col} == \"{name}\"\n| where {role} == \"{CLOUD_ROLE}\"\n\
                 | project {time}, {instance}, {value}",
                table = s.metrics,
                name_col = s.name,
                role = s.role,
                time = s.time,
                instance = s.instance,
                value = s.value,
            ),
        }
    }

    /// The rule's name.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.slug)
    }

    /// The ARM body of the rule.
    pub fn body(&self, scope: &ScopeId, location: &str, action_group_id: &str) -> Value {
        let schema = Schema::of(scope.kind);
        let dimensions = json!([{"name": schema.instance, "operator": "Include", "values": ["*"]}]);
        let mut condition = json!({
            "query": self.query(&schema),
            "dimensions": dimensions,
            "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
        });
        match self.signal {
            Signal::Silent { .. } => {
                condition["timeAggregation"] = json!("Count");
                condition["operator"] = json!("GreaterThan");
                condition["threshold"] = json!(0);
            }
            Signal::Metric {
                aggregation,
                operator,
                threshold,
                ..
            } => {
                condition["timeAggregation"] = json!(aggregation);
                condition["metricMeasureColumn"] = json!(schema.value);
                condition["operator"] = json!(operator);
                condition["threshold"] = json!(threshold);
            }
        }
        let mut properties = json!({
            "displayName": format!("cryptobot: {}", self.title),
            "description": self.description,
            "severity": self.severity,
            "enabled": true,
            "scopes": [scope.id],
            "evaluationFrequency": self.frequency,
            "windowSize": self.window,
            "criteria": {"allOf": [condition]},
            "autoMitigate": true,
            "muteActionsDuration": self.mute,
            "actions": {"actionGroups": [action_group_id], "customProperties": {"source": "cryptoctl"}},
        });
        if let Signal::Silent { lookback_days, .. } = self.signal {
            properties["overrideQueryTimeRange"] = json!(format!("P{lookback_days}D"));
        }
        json!({
            "location": location,
            "kind": "LogAlert",
            "tags": {MANAGED_TAG.0: MANAGED_TAG.1},
            "properties": properties,
        })
    }
}

/// The receivers of the action group.
#[derive(Debug, Clone, Default)]
pub struct Receivers {
    /// E-mail addresses.
    pub email: Vec<EmailAddress>,
    /// Webhooks (common alert schema).
    pub webhook: Vec<WebhookUrl>,
    /// Logic Apps (common alert schema).
    pub logic_app: Vec<LogicAppReceiver>,
}

impl Receivers {
    /// True when no receiver is given.
    pub fn is_empty(&self) -> bool {
        self.email.is_empty() && self.webhook.is_empty() && self.logic_app.is_empty()
    }
}

/// The ARM body of the action group (location `global`; every receiver gets the common alert
/// schema).
pub fn action_group_body(short_name: &str, receivers: &Receivers) -> Value {
    let email: Vec<Value> = receivers
        .email
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({"name": format!("email-{}", i + 1), "emailAddress": e.as_str(), "useCommonAlertSchema": true})
        })
        .collect();
    let webhook: Vec<Value> = receivers
        .webhook
        .iter()
        .enumerate()
        .map(|(i, w)| {
            json!({"name": format!("webhook-{}", i + 1), "serviceUri": w.as_str(), "useCommonAlertSchema": true})
        })
        .collect();
    let logic_app: Vec<Value> = receivers
        .logic_app
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"name": format!("logicapp-{}", i + 1), "resourceId": l.resource_id,
                   "callbackUrl": l.callback_url, "useCommonAlertSchema": true})
        })
        .collect();
    json!({
        "location": "global",
        "tags": {MANAGED_TAG.0: MANAGED_TAG.1},
        "properties": {
            "groupShortName": short_name,
            "enabled": true,
            "emailReceivers": email,
            "webhookReceivers": webhook,
            "logicAppReceivers": logic_app,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: ScopeKind) -> ScopeId {
        let id = match kind {
            ScopeKind::AppInsights => {
                "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/ops/providers/Microsoft.Insights/components/bots"
            }
            ScopeKind::Workspace => {
                "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/ops/providers/Microsoft.OperationalInsights/workspaces/logs"
            }
        };
        ScopeId::parse(id, kind).unwrap()
    }

    #[test]
    fn silent_rule_looks_back_for_vms_that_went_quiet() {
        let b = RULES[0].body(&scope(ScopeKind::AppInsights), "westeurope", "/ag");
        let q = b["properties"]["criteria"]["allOf"][0]["query"]
            .as_str()
            .unwrap();
        assert!(q.starts_with("availabilityResults\n"), "{q}");
        assert!(
            q.contains("summarize LastSeen = max(timestamp) by cloud_RoleInstance"),
            "{q}"
        );
        assert!(q.contains("where LastSeen < ago(10m)"), "{q}");
        assert_eq!(b["properties"]["overrideQueryTimeRange"], "P2D");
        assert_eq!(
            b["properties"]["criteria"]["allOf"][0]["timeAggregation"],
            "Count"
        );
        assert_eq!(b["kind"], "LogAlert");
        assert_eq!(b["tags"]["managed-by"], "cryptoctl");
    }

    #[test]
    fn metric_rules_use_the_schema_of_the_scope() {
        let w = RULES[1].body(&scope(ScopeKind::Workspace), "westeurope", "/ag");
        let c = &w["properties"]["criteria"]["allOf"][0];
        assert!(
            c["query"]
                .as_str()
                .unwrap()
                .starts_with("AppMetrics\n| where Name == \"health.service_active\"")
        );
        assert_eq!(c["dimensions"][0]["name"], "AppRoleInstance");
        assert_eq!(c["metricMeasureColumn"], "Max");
        let a = RULES[1].body(&scope(ScopeKind::AppInsights), "westeurope", "/ag");
        assert_eq!(
            a["properties"]["criteria"]["allOf"][0]["dimensions"][0]["name"],
            "cloud_RoleInstance"
        );
        let slugs: Vec<&str> = RULES.iter().map(|r| r.slug).collect();
        assert_eq!(
            slugs,
            [
                "vm-silent",
                "worker-down",
                "crash-loop",
                "disk-critical",
                "heartbeat-stale"
            ]
        );
    }
}
