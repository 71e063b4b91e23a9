//! Azure Monitor in the emulator: `Microsoft.Insights` action groups, scheduled query rules (log
//! alerts) and metric alerts (PUT, GET, DELETE, list by resource group), and the Application
//! Insights components and Log Analytics workspaces a test adds (GET only). Each type answers only
//! its own stable api-versions (ARM's `NoRegisteredProviderFound` / `InvalidApiVersionParameter`
//! otherwise), checks the fields its REST specification requires and answers a bad shape with
//! ARM's `400 {"error":{"code","message"}}`. PUT answers 201 when it creates and 200 when it
//! replaces, with the stored resource (`id`, `name`, `type`, `location`, `tags`, `kind`,
//! `properties`, plus the read-only fields Azure adds); DELETE answers 200, or 204 when there was
//! nothing.

use std::collections::BTreeMap;

use axum::{
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

mod checks;

use self::checks::{
    check_action_group, check_metric_alert, check_name, check_scheduled_query_rule,
};
use super::{
    AzureEmulator, SUBSCRIPTION, Shared,
    routes::{arm_error, json_response},
};

/// The Monitor resources of an emulator, by lowercase resource id.
#[derive(Debug, Default)]
pub(super) struct Store {
    resources: BTreeMap<String, Value>,
}

/// A resource type: its canonical `type`, its api-versions and whether it can be written.
struct Kind {
    canonical: &'static str,
    versions: &'static [&'static str],
    writable: bool,
}

const ACTION_GROUPS: Kind = Kind {
    canonical: "Microsoft.Insights/actionGroups",
    versions: &[
        "2017-04-01",
        "2018-03-01",
        "2018-09-01",
        "2019-03-01",
        "2019-06-01",
        "2021-09-01",
        "2022-06-01",
        "2023-01-01",
    ],
    writable: true,
};
const SCHEDULED_QUERY_RULES: Kind = Kind {
    canonical: "Microsoft.Insights/scheduledQueryRules",
    versions: &["2018-04-16", "2021-08-01", "2022-06-15", "2023-12-01"],
    writable: true,
};
const METRIC_ALERTS: Kind = Kind {
    canonical: "Microsoft.Insights/metricAlerts",
    versions: &["2018-03-01"],
    writable: true,
};
const COMPONENTS: Kind = Kind {
    canonical: "Microsoft.Insights/components",
    versions: &["2015-05-01", "2020-02-02"],
    writable: false,
};
const WORKSPACES: Kind = Kind {
    canonical: "Microsoft.OperationalInsights/workspaces",
    versions: &[
        "2020-08-01",
        "2020-10-01",
        "2021-06-01",
        "2022-10-01",
        "2023-09-01",
    ],
    writable: false,
};

fn kind_of(provider: &str, resource_type: &str) -> Option<Kind> {
    match (
        provider.to_ascii_lowercase().as_str(),
        resource_type.to_ascii_lowercase().as_str(),
    ) {
        ("microsoft.insights", "actiongroups") => Some(ACTION_GROUPS),
        ("microsoft.insights", "scheduledqueryrules") => Some(SCHEDULED_QUERY_RULES),
        ("microsoft.insights", "metricalerts") => Some(METRIC_ALERTS),
        ("microsoft.insights", "components") => Some(COMPONENTS),
        ("microsoft.operationalinsights", "workspaces") => Some(WORKSPACES),
        _ => None,
    }
}

fn well_formed(version: &str) -> bool {
    let date = version.strip_suffix("-preview").unwrap_or(version);
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn bad_request(message: &str) -> Response {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Answers a request for a Monitor path (`None` for any other path).
pub(super) fn route(
    state: &Shared,
    method: &Method,
    path: &str,
    version: &str,
    body: &[u8],
) -> Option<Response> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let shaped = (segs.len() == 7 || segs.len() == 8)
        && segs[0].eq_ignore_ascii_case("subscriptions")
        && segs[2].eq_ignore_ascii_case("resourceGroups")
        && segs[4].eq_ignore_ascii_case("providers");
    if !shaped {
        return None;
    }
    let kind = kind_of(segs[5], segs[6])?;
    let short_type = segs[6];
    if !kind.versions.contains(&version) {
        let list = kind.versions.join(", ");
        return Some(if well_formed(version) {
            arm_error(
                StatusCode::BAD_REQUEST,
                "NoRegisteredProviderFound",
                &format!(
                    "No registered resource provider found for location 'global' and API version \
                     '{version}' for type '{short_type}'. The supported api-versions are '{list}'."
                ),
            )
        } else {
            arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{version}' is invalid. The supported versions are '{list}'."
                ),
            )
        });
    }
    if segs[1] != SUBSCRIPTION {
        return Some(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", segs[1]),
        ));
    }
    let rg = segs[3];
    let Some(name) = segs.get(7).copied() else {
        return Some(if *method == Method::GET {
            list(state, &kind, rg)
        } else {
            arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The requested resource does not support this method.",
            )
        });
    };
    let id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/{}/{name}",
        kind.canonical
    );
    let key = id.to_ascii_lowercase();
    let not_found = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource '{}/{name}' under resource group '{rg}' was not found.",
                kind.canonical
            ),
        )
    };
    let mut s = state.lock().expect("state");
    Some(match method.clone() {
        Method::GET => match s.monitor.resources.get(&key) {
            Some(v) => json_response(StatusCode::OK, v),
            None => not_found(),
        },
        Method::DELETE if kind.writable => match s.monitor.resources.remove(&key) {
            Some(_) => json_response(StatusCode::OK, &json!({})),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        Method::PUT if kind.writable => {
            let body: Value = match serde_json::from_slice(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Some(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContent",
                        "The request content was invalid and could not be deserialized.",
                    ));
                }
            };
            if let Err(why) = check_name(name) {
                return Some(arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceName",
                    &why,
                ));
            }
            if let Some(refused) = check_location(&kind, &body) {
                return Some(refused);
            }
            let checked = match kind.canonical {
                "Microsoft.Insights/actionGroups" => check_action_group(&body),
                "Microsoft.Insights/scheduledQueryRules" => check_scheduled_query_rule(&body),
                _ => check_metric_alert(&body),
            };
            if let Err(why) = checked {
                return Some(bad_request(&why));
            }
            let stored = stored(&kind, &id, name, &body, version);
            let existed = s.monitor.resources.insert(key, stored.clone()).is_some();
            json_response(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                &stored,
            )
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The requested resource does not support this method.",
        ),
    })
}

fn list(state: &Shared, kind: &Kind, rg: &str) -> Response {
    let s = state.lock().expect("state");
    let prefix = format!(
        "/subscriptions/{SUBSCRIPTION}/resourcegroups/{}/providers/",
        rg
    )
    .to_ascii_lowercase();
    let value: Vec<Value> = s
        .monitor
        .resources
        .iter()
        .filter(|(k, v)| k.starts_with(&prefix) && v["type"].as_str() == Some(kind.canonical))
        .map(|(_, v)| v.clone())
        .collect();
    json_response(StatusCode::OK, &json!({ "value": value }))
}

/// What GET returns after a PUT: the body's fields plus what Azure adds.
fn stored(kind: &Kind, id: &str, name: &str, body: &Value, version: &str) -> Value {
    let mut properties = body["properties"].clone();
    match kind.canonical {
        "Microsoft.Insights/actionGroups" => {
            for list in [
                "emailReceivers",
                "webhookReceivers",
                "logicAppReceivers",
                "smsReceivers",
            ] {
                match properties[list].as_array_mut() {
                    Some(a) => {
                        for r in a.iter_mut() {
                            if list == "emailReceivers" || list == "smsReceivers" {
                                r["status"] = json!("Enabled");
                            }
                            if r.get("useCommonAlertSchema").is_none() {
                                r["useCommonAlertSchema"] = json!(false);
                            }
                        }
                    }
                    None => properties[list] = json!([]),
                }
            }
        }
        "Microsoft.Insights/scheduledQueryRules" => {
            properties["createdWithApiVersion"] = json!(version);
            properties["isWorkspaceAlertsStorageConfigured"] = json!(false);
            properties["isLegacyLogAnalyticsRule"] = json!(false);
        }
        _ => {}
    }
    let mut v = json!({
        "id": id,
        "name": name,
        "type": kind.canonical,
        "location": body["location"],
        "tags": body.get("tags").cloned().unwrap_or_else(|| json!({})),
        "properties": properties,
    });
    if let Some(k) = body.get("kind") {
        v["kind"] = k.clone();
    }
    v
}

/// Regions where the emulated Monitor resource types exist (`global` for action groups and
/// metric alerts, as Azure has them).
const REGIONS: &[&str] = &[
    "eastus",
    "eastus2",
    "westus",
    "westus2",
    "centralus",
    "northeurope",
    "westeurope",
    "uksouth",
    "francecentral",
    "germanywestcentral",
    "swedencentral",
    "switzerlandnorth",
    "australiaeast",
    "japaneast",
];

/// ARM's answer to a `location` the type is not available in.
fn check_location(kind: &Kind, body: &Value) -> Option<Response> {
    let location = body["location"].as_str()?;
    let normalized = location.replace(' ', "").to_ascii_lowercase();
    let global = kind.canonical != "Microsoft.Insights/scheduledQueryRules";
    if REGIONS.contains(&normalized.as_str()) || (global && normalized == "global") {
        return None;
    }
    let mut available: Vec<&str> = REGIONS.to_vec();
    if global {
        available.insert(0, "global");
    }
    Some(arm_error(
        StatusCode::BAD_REQUEST,
        "LocationNotAvailableForResourceType",
        &format!(
            "The provided location '{location}' is not available for resource type '{}'. List of \
             available regions for the resource type is '{}'.",
            kind.canonical,
            available.join(",")
        ),
    ))
}

impl AzureEmulator {
    /// Adds an Application Insights component (readable with GET); returns its resource id.
    pub fn add_app_insights(&self, resource_group: &str, name: &str, location: &str) -> String {
        self.add_readonly(&COMPONENTS, resource_group, name, location)
    }

    /// Adds a Log Analytics workspace (readable with GET); returns its resource id.
    pub fn add_workspace(&self, resource_group: &str, name: &str, location: &str) -> String {
        self.add_readonly(&WORKSPACES, resource_group, name, location)
    }

    fn add_readonly(&self, kind: &Kind, rg: &str, name: &str, location: &str) -> String {
        let id = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/{}/{name}",
            kind.canonical
        );
        let v = json!({"id": id, "name": name, "type": kind.canonical, "location": location,
                       "tags": {}, "properties": {"provisioningState": "Succeeded"}});
        self.state
            .lock()
            .expect("state")
            .monitor
            .resources
            .insert(id.to_ascii_lowercase(), v);
        id
    }

    /// Sends one Monitor request (`path?api-version=…`) straight to the emulator's handler, as a
    /// client other than cryptoctl would (e.g. someone creating a rule in the portal): the same
    /// api-version, shape and location checks apply. Returns the status and the JSON body.
    pub fn monitor_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &Value,
    ) -> (u16, Value) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let version = super::routes::query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let body = serde_json::to_vec(body).expect("JSON");
        let response = route(&self.state, &method, path, &version, &body)
            .unwrap_or_else(|| panic!("{path} is not a Monitor path"));
        let status = response.status().as_u16();
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Every stored Monitor resource (action groups, rules, components, workspaces).
    pub fn monitor_resources(&self) -> Vec<Value> {
        self.state
            .lock()
            .expect("state")
            .monitor
            .resources
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::azure_emulator::{AzureEmulator, SUBSCRIPTION};

    #[test]
    fn shapes_and_api_versions_are_checked_as_arm_checks_them() {
        let emu = AzureEmulator::builder().start();
        let ai = emu.add_app_insights("OPS-RG", "bots-insights", "westeurope");
        let base = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/OPS-RG/providers/Microsoft.Insights"
        );
        let group = json!({"location": "global", "properties": {"groupShortName": "cryptobot", "enabled": true}});
        let cases = [
            (
                "actionGroups/a?api-version=2099-01-01",
                group.clone(),
                "NoRegisteredProviderFound",
            ),
            (
                "actionGroups/a?api-version=2021-08-01",
                group.clone(),
                "NoRegisteredProviderFound",
            ),
            (
                "actionGroups/a?api-version=latest",
                group.clone(),
                "InvalidApiVersionParameter",
            ),
            (
                "actionGroups/a?api-version=2023-01-01",
                json!({"location": "global", "properties": {"groupShortName": "much-too-long-name", "enabled": true}}),
                "longer than 12",
            ),
            (
                "actionGroups/a?api-version=2023-01-01",
                json!({"location": "global", "properties": {"enabled": true}}),
                "groupShortName",
            ),
            (
                "actionGroups/a?api-version=2023-01-01",
                json!({"properties": {"groupShortName": "x", "enabled": true}}),
                "'location'",
            ),
            (
                "actionGroups/a?api-version=2023-01-01",
                json!({"location": "global", "properties": {"groupShortName": "x"}}),
                "properties.enabled",
            ),
            (
                "scheduledQueryRules/r?api-version=2023-01-01",
                json!({}),
                "NoRegisteredProviderFound",
            ),
            (
                "scheduledQueryRules/r?api-version=2021-08-01",
                json!({"location": "westeurope", "kind": "LogAlert",
                "properties": {"enabled": true, "scopes": [ai], "severity": 1, "evaluationFrequency": "PT5M", "windowSize": "PT10M"}}),
                "criteria.allOf",
            ),
            (
                "scheduledQueryRules/r?api-version=2021-08-01",
                json!({"location": "westeurope",
                "properties": {"enabled": true, "scopes": [ai], "severity": 1, "evaluationFrequency": "PT5M", "windowSize": "PT10M",
                               "criteria": {"allOf": [{"query": "x", "timeAggregation": "Count", "operator": "GreaterThan", "threshold": 0}]}}}),
                "'kind'",
            ),
            (
                "scheduledQueryRules/r?api-version=2021-08-01",
                json!({"location": "westeurope", "kind": "LogAlert",
                "properties": {"enabled": true, "scopes": [ai], "severity": 1, "evaluationFrequency": "5 minutes", "windowSize": "PT10M",
                               "criteria": {"allOf": [{"query": "x", "timeAggregation": "Count", "operator": "GreaterThan", "threshold": 0}]}}}),
                "evaluationFrequency",
            ),
            (
                "scheduledQueryRules/r?api-version=2021-08-01",
                json!({"location": "westeurope", "kind": "LogAlert",
                "properties": {"enabled": true, "scopes": [ai], "severity": 1, "evaluationFrequency": "PT5M", "windowSize": "PT10M",
                               "criteria": {"allOf": [{"query": "x", "timeAggregation": "Maximum", "operator": "GreaterThan", "threshold": 0}]}}}),
                "metricMeasureColumn",
            ),
            (
                "scheduledQueryRules/bad:name?api-version=2021-08-01",
                json!({}),
                "InvalidResourceName",
            ),
            (
                "metricAlerts/m?api-version=2018-03-01",
                json!({"location": "global", "properties": {"severity": 1, "enabled": true}}),
                "scopes",
            ),
        ];
        for (path, body, expected) in cases {
            let (status, answer) = emu.monitor_request("PUT", &format!("{base}/{path}"), &body);
            assert_eq!(status, 400, "{path}: {answer}");
            let code = answer["error"]["code"].as_str().unwrap();
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                code == expected || message.contains(expected),
                "{path}: {answer}"
            );
        }
        let (status, answer) = emu.monitor_request(
            "GET",
            &format!("{base}/scheduledQueryRules?api-version=2021-08-01"),
            &Value::Null,
        );
        assert_eq!((status, answer), (200, json!({"value": []})));
        let (status, _) = emu.monitor_request(
            "DELETE",
            &format!("{base}/actionGroups/none?api-version=2023-01-01"),
            &Value::Null,
        );
        assert_eq!(status, 204);
        let (status, answer) = emu.monitor_request(
            "GET",
            &format!("{base}/scheduledQueryRules/none?api-version=2021-08-01"),
            &Value::Null,
        );
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("ResourceNotFound"))
        );
    }
}
