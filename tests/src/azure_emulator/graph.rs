//! Azure Resource Graph in the emulator: `POST /providers/Microsoft.ResourceGraph/resources` over
//! the `Resources` table (the emulator's VMs in its own subscription, the fleets' VMs in others,
//! and their NICs), with the wire shapes of the 2021-03-01 specification: the scope in the body
//! (`subscriptions` or `managementGroups`), `objectArray` results by default (`table` on request),
//! `totalRecords`/`count`, `resultTruncated` as the string `"true"`/`"false"`, pages of
//! `options.$top` (1..1000) rows continued by an opaque `$skipToken` that only works with the same
//! query and scope, a per-caller quota of queries per window reported in
//! `x-ms-user-quota-remaining` / `x-ms-user-quota-resets-after` (`hh:mm:ss`) and answered with
//! 429 and `Retry-After` when used up. Queries run on the emulator's small KQL engine: one it
//! cannot run is a `400 BadRequest` with `InvalidQuery` details, as Azure answers.

use std::{collections::HashMap, time::Instant};

use axum::{
    http::{HeaderValue, Method, StatusCode},
    response::Response,
};
use serde_json::{Map, Value, json};

use super::{
    EmulatedVm, SUBSCRIPTION, Shared, TENANT,
    kql::{self, Table},
    logs,
    routes::{arm_error, json_response, nic_id},
};

/// The stable api-versions of `Microsoft.ResourceGraph/resources`.
const VERSIONS: &[&str] = &["2019-04-01", "2021-03-01", "2022-10-01", "2024-04-01"];

/// Paging sessions and the quota window.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    next: u64,
    open: HashMap<String, Session>,
    window: Option<(Instant, u32)>,
}

#[derive(Debug)]
struct Session {
    query: String,
    scope: Value,
    rows: std::sync::Arc<Vec<Map<String, Value>>>,
    offset: usize,
}

impl Sessions {
    /// Forgets the quota window, so the next query starts a new one.
    pub(super) fn new_window(&mut self) {
        self.window = None;
    }
}

fn bad_query(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": "BadRequest",
        "message": "Please provide below info when asking for support: timestamp = 2026-01-01T00:00:00.0000000Z, correlationId = 00000000-0000-0000-0000-000000000000.",
        "details": [
            {"code": "InvalidQuery", "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."},
            {"code": "ParserFailure", "message": message}
        ]}}),
    )
}

/// `hh:mm:ss`, rounded up (a quota that resets in 1.2 s resets after `00:00:02`).
fn hms(d: std::time::Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A VM as Resource Graph has it: `properties` of the VM plus `extended.instanceView`.
fn vm_row(subscription: &str, vm: &EmulatedVm) -> Vec<Value> {
    let id = super::fleet::vm_resource_id(subscription, &vm.resource_group, &vm.name);
    let power = json!({"code": format!("PowerState/{}", vm.power), "level": "Info",
                       "displayStatus": format!("VM {}", vm.power)});
    vec![
        json!(id),
        json!(vm.name),
        json!("microsoft.compute/virtualmachines"),
        json!(TENANT),
        json!(""),
        json!(vm.location),
        json!(vm.resource_group.to_ascii_lowercase()),
        json!(subscription),
        json!(""),
        Value::Null,
        Value::Null,
        json!({
            "vmId": format!("{:08x}-0000-4000-8000-000000000000", vm.name.len()),
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {"osDisk": {"osType": vm.os_type, "name": format!("{}_OsDisk_1", vm.name),
                                          "createOption": "FromImage"}},
            "osProfile": {"computerName": vm.name, "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic_id(subscription, vm), "properties": {"primary": true}}]},
            "provisioningState": "Succeeded",
            "extended": {"instanceView": {"computerName": vm.name, "osName": "debian", "osVersion": "12",
                                          "powerState": power}},
        }),
        json!(vm.tags),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

fn nic_row(subscription: &str, vm: &EmulatedVm) -> Vec<Value> {
    vec![
        json!(nic_id(subscription, vm)),
        json!(format!("{}-nic", vm.name)),
        json!("microsoft.network/networkinterfaces"),
        json!(TENANT),
        json!(""),
        json!(vm.location),
        json!(vm.resource_group.to_ascii_lowercase()),
        json!(subscription),
        json!(""),
        Value::Null,
        Value::Null,
        json!({"provisioningState": "Succeeded", "primary": true}),
        json!({}),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

const COLUMNS: [&str; 16] = [
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
];

/// Answers a Resource Graph request (`None` for any other path).
pub(super) fn route(
    state: &Shared,
    method: &Method,
    path: &str,
    version: &str,
    body: &[u8],
) -> Option<Response> {
    if !path.eq_ignore_ascii_case("/providers/Microsoft.ResourceGraph/resources") {
        return None;
    }
    let mut s = state.lock().expect("state");
    s.fleet.stats.graph_requests += 1;
    if *method != Method::POST {
        return Some(arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The requested resource does not support http method.",
        ));
    }
    if !VERSIONS.contains(&version) {
        return Some(arm_error(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            &format!(
                "No registered resource provider found for location 'global' and API version '{version}' for type 'resources'. The supported api-versions are '{}'.",
                VERSIONS.join(", ")
            ),
        ));
    }
    // the quota: so many queries per window
    let (limit, window) = (s.fleet.faults.graph_quota, s.fleet.faults.graph_window);
    let now = Instant::now();
    let (start, used) = match s.fleet.graph.window {
        Some((start, used)) if now < start + window => (start, used),
        _ => (now, 0),
    };
    let resets = (start + window).saturating_duration_since(now);
    if used >= limit {
        s.fleet.stats.graph_throttled += 1;
        let mut r = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimiting",
            "Please provide below info when asking for support: timestamp = 2026-01-01T00:00:00.0000000Z. Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed.",
        );
        let h = r.headers_mut();
        h.insert(
            "retry-after",
            HeaderValue::from((resets.as_secs() + u64::from(resets.subsec_nanos() > 0)).max(1)),
        );
        h.insert("x-ms-user-quota-remaining", HeaderValue::from(0));
        if let Ok(v) = HeaderValue::from_str(&hms(resets)) {
            h.insert("x-ms-user-quota-resets-after", v);
        }
        return Some(r);
    }
    s.fleet.graph.window = Some((start, used + 1));
    let mut response = answer(&mut s, body);
    let h = response.headers_mut();
    h.insert(
        "x-ms-user-quota-remaining",
        HeaderValue::from(limit - used - 1),
    );
    if let Ok(v) = HeaderValue::from_str(&hms(resets)) {
        h.insert("x-ms-user-quota-resets-after", v);
    }
    Some(response)
}

fn answer(s: &mut super::State, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    let Some(query) = req["query"].as_str() else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The 'query' field is required.",
        );
    };
    let options = &req["options"];
    let top = options["$top"].as_u64().unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The $top option must be between 1 and 1000.",
        );
    }
    let table_format = match options["resultFormat"].as_str() {
        None | Some("objectArray") => false,
        Some("table") => true,
        Some(f) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Unknown result format '{f}'."),
            );
        }
    };
    // the scope
    let subscriptions: Vec<String> = if let Some(mgs) = req["managementGroups"].as_array() {
        let mut subs = Vec::new();
        for mg in mgs {
            let name = mg.as_str().unwrap_or("");
            match s.fleet.management_groups.get(name) {
                Some(list) => subs.extend(list.iter().cloned()),
                None => {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "Management group '{name}' was not found, or the caller has no access to it."
                        ),
                    );
                }
            }
        }
        subs
    } else if let Some(list) = req["subscriptions"].as_array() {
        s.fleet.stats.max_subscriptions_per_request =
            s.fleet.stats.max_subscriptions_per_request.max(list.len());
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
            .collect()
    } else {
        // tenant scope: every subscription the caller sees
        let mut all = vec![SUBSCRIPTION.to_owned()];
        all.extend(s.fleet.extra_vms.iter().map(|v| v.subscription.clone()));
        all.sort_unstable();
        all.dedup();
        all
    };
    let scope =
        json!({"subscriptions": req["subscriptions"], "managementGroups": req["managementGroups"]});
    let page_size = (top as usize).min(s.fleet.faults.graph_page_limit).max(1);
    let (rows, offset, total) = match options["$skipToken"].as_str() {
        Some(token) => match s.fleet.graph.open.get(token) {
            Some(sess) if sess.query == query && sess.scope == scope => {
                (sess.rows.clone(), sess.offset, sess.rows.len())
            }
            Some(_) => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The $skipToken does not belong to this query and scope: pass the same query and scopes as the request that returned it.",
                );
            }
            None => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The $skipToken is invalid or has expired.",
                );
            }
        },
        None => {
            let mut t = Table {
                columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                rows: Vec::new(),
            };
            let wanted = |sub: &str| subscriptions.iter().any(|x| x.eq_ignore_ascii_case(sub));
            if wanted(SUBSCRIPTION) {
                for vm in &s.vms {
                    t.rows.push(vm_row(SUBSCRIPTION, vm));
                    t.rows.push(nic_row(SUBSCRIPTION, vm));
                }
            }
            for v in s.fleet.extra_vms.iter().filter(|v| wanted(&v.subscription)) {
                t.rows.push(vm_row(&v.subscription, &v.vm));
            }
            let tables = HashMap::from([("Resources".to_owned(), t)]);
            match kql::run(query, &tables, logs::now_ms()) {
                Ok(result) => {
                    let rows = std::sync::Arc::new(result.objects());
                    let n = rows.len();
                    (rows, 0, n)
                }
                Err(e) => return bad_query(&e.to_string()),
            }
        }
    };
    let end = (offset + page_size).min(total);
    let page: Vec<Map<String, Value>> = rows[offset.min(end)..end].to_vec();
    let truncated = s.fleet.faults.graph_truncate && end < total;
    let mut body = json!({
        "totalRecords": total,
        "count": page.len(),
        "resultTruncated": if truncated { "true" } else { "false" },
        "facets": [],
    });
    // paging needs the id column, as in Azure
    let has_id = page.first().is_none_or(|r| r.contains_key("id"));
    if end < total && !truncated && has_id {
        s.fleet.graph.next += 1;
        let token = base64_token(s.fleet.graph.next, end);
        s.fleet.graph.open.insert(
            token.clone(),
            Session {
                query: query.to_owned(),
                scope,
                rows,
                offset: end,
            },
        );
        body["$skipToken"] = json!(token);
    } else if end < total {
        body["resultTruncated"] = json!("true");
    }
    body["data"] = if table_format {
        let t = Table::from_objects(&page);
        json!({"columns": t.columns.iter().map(|c| json!({"name": c, "type": "object"})).collect::<Vec<_>>(),
               "rows": t.rows})
    } else {
        Value::Array(page.into_iter().map(Value::Object).collect())
    };
    json_response(StatusCode::OK, &body)
}

fn base64_token(n: u64, offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!(
        r#"{{"$id":{n},"$skip":{offset},"$version":"emulator"}}"#
    ))
}
