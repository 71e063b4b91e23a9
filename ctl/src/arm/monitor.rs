//! Azure Monitor resources as plain JSON: action groups, scheduled query rules (log alerts) and
//! metric alerts (`Microsoft.Insights`), plus reading the Application Insights component or Log
//! Analytics workspace the rules query. Each type has its own api-version, as the REST
//! specifications define them; every call goes through [`ArmClient::send`] (tokens, retries,
//! throttling).

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{client::ArmClient, errors::ArmError};

/// `Microsoft.Insights/actionGroups`: the current stable api-version.
pub const ACTION_GROUPS_API_VERSION: &str = "2023-01-01";
/// `Microsoft.Insights/scheduledQueryRules`: the stable api-version with `kind: LogAlert`,
/// `criteria.allOf[].dimensions`, `autoMitigate`, `muteActionsDuration` and
/// `overrideQueryTimeRange`.
pub const SCHEDULED_QUERY_RULES_API_VERSION: &str = "2021-08-01";
/// `Microsoft.Insights/metricAlerts`.
pub const METRIC_ALERTS_API_VERSION: &str = "2018-03-01";
/// `Microsoft.Insights/components` (Application Insights).
pub const COMPONENTS_API_VERSION: &str = "2020-02-02";
/// `Microsoft.OperationalInsights/workspaces` (Log Analytics).
pub const WORKSPACES_API_VERSION: &str = "2022-10-01";

/// The Monitor resource types cryptoctl writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MonitorType {
    /// `Microsoft.Insights/actionGroups`.
    ActionGroup,
    /// `Microsoft.Insights/scheduledQueryRules`.
    ScheduledQueryRule,
    /// `Microsoft.Insights/metricAlerts`.
    MetricAlert,
}

impl MonitorType {
    /// Every type, in the order they are created (the action group first: rules refer to it).
    pub const ALL: [MonitorType; 3] = [
        MonitorType::ActionGroup,
        MonitorType::ScheduledQueryRule,
        MonitorType::MetricAlert,
    ];

    /// The type's path segment under `providers/Microsoft.Insights`.
    pub fn segment(self) -> &'static str {
        match self {
            MonitorType::ActionGroup => "actionGroups",
            MonitorType::ScheduledQueryRule => "scheduledQueryRules",
            MonitorType::MetricAlert => "metricAlerts",
        }
    }

    /// The api-version used for it.
    pub fn api_version(self) -> &'static str {
        match self {
            MonitorType::ActionGroup => ACTION_GROUPS_API_VERSION,
            MonitorType::ScheduledQueryRule => SCHEDULED_QUERY_RULES_API_VERSION,
            MonitorType::MetricAlert => METRIC_ALERTS_API_VERSION,
        }
    }

    /// The resource id of `name` in `rg` of `subscription`.
    pub fn id(self, subscription: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.Insights/{}/{name}",
            self.segment()
        )
    }
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// 201.
    Created,
    /// 200.
    Updated,
}

impl ArmClient {
    /// GET a resource by id; `None` when it does not exist (404).
    pub async fn get_resource(
        &self,
        id: &str,
        api_version: &str,
        deadline: Instant,
    ) -> Result<Option<Value>, ArmError> {
        let url = self.resource_url(id, api_version);
        let resp = self.send(Method::GET, &url, None, deadline).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status.is_success() {
            return Err(ArmError::from_response(resp.status.as_u16(), &resp.body));
        }
        resp.json().map(Some)
    }

    /// PUT (create or replace) a resource; ARM's error (e.g. 400 with its code and message) when
    /// refused.
    pub async fn put_resource(
        &self,
        id: &str,
        api_version: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<PutOutcome, ArmError> {
        let url = self.resource_url(id, api_version);
        let resp = self.send(Method::PUT, &url, Some(body), deadline).await?;
        match resp.status {
            StatusCode::CREATED => Ok(PutOutcome::Created),
            s if s.is_success() => Ok(PutOutcome::Updated),
            s => Err(ArmError::from_response(s.as_u16(), &resp.body)),
        }
    }

    /// DELETE a resource; false when it was already gone (204 or 404).
    pub async fn delete_resource(
        &self,
        id: &str,
        api_version: &str,
        deadline: Instant,
    ) -> Result<bool, ArmError> {
        let url = self.resource_url(id, api_version);
        let resp = self.send(Method::DELETE, &url, None, deadline).await?;
        match resp.status {
            StatusCode::OK | StatusCode::ACCEPTED => Ok(true),
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(false),
            s => Err(ArmError::from_response(s.as_u16(), &resp.body)),
        }
    }

    /// Every resource of `kind` in a resource group (following `nextLink`).
    pub async fn list_monitor(
        &self,
        subscription: &str,
        rg: &str,
        kind: MonitorType,
        deadline: Instant,
    ) -> Result<Vec<Value>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "resourceGroups",
                rg,
                "providers",
                "Microsoft.Insights",
                kind.segment(),
            ],
            kind.api_version(),
        );
        self.list(url, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_versions() {
        assert_eq!(
            MonitorType::ScheduledQueryRule.id("s", "rg", "cryptobot-vm-silent"),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/scheduledQueryRules/cryptobot-vm-silent"
        );
        assert_eq!(MonitorType::ActionGroup.api_version(), "2023-01-01");
        assert_eq!(MonitorType::ALL[0], MonitorType::ActionGroup);
    }
}
