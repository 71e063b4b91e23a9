//! The emulator's HTTP surface: the Entra token endpoint and the Resource Manager paths, with
//! latency, 429/500 faults, bearer-token checks and throttling headers applied to every ARM call.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{EmulatedVm, SUBSCRIPTION, SUBSCRIPTION_NAME, Seen, Shared, TENANT, identity, run};

pub(super) const API_VERSION: &str = "2024-11-01";

pub(super) fn router(state: Shared) -> Router {
    Router::new().fallback(handle).with_state(state)
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let response = if let Some(r) =
        super::query_api::handle(&state, &method, &uri, &headers, &body).await
    {
        r
    } else if method == Method::POST && path.ends_with("/oauth2/v2.0/token") {
        let (issued, html, storage) = {
            let s = state.lock().expect("state");
            (s.token.clone(), s.faults.token_html, s.blob.token.clone())
        };
        let mut form = query_pairs(&String::from_utf8_lossy(&body));
        let issued = if super::blob::for_storage(&mut form) {
            storage
        } else {
            issued
        };
        if html {
            identity::html_page()
        } else {
            identity::token(&path, &form, &issued)
        }
    } else if method == Method::GET && path == identity::MANAGED_IDENTITY_PATH {
        identity::managed_identity(&state, &query_pairs(uri.query().unwrap_or("")), &headers).await
    } else {
        arm(&state, &method, &uri, &headers, &body).await
    };
    state.lock().expect("state").seen.push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        status: response.status().as_u16(),
        at: std::time::Instant::now(),
    });
    response
}

async fn arm(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let latency = state.lock().expect("state").faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let expected = format!("Bearer {}", state.lock().expect("state").token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or invalid.",
        );
    }
    let fault = {
        let mut s = state.lock().expect("state");
        if s.faults.throttle_next > 0 {
            s.faults.throttle_next -= 1;
            let mut r = arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:03:00.",
            );
            r.headers_mut().insert(
                "retry-after",
                HeaderValue::from(s.faults.throttle_retry_after),
            );
            Some(r)
        } else if s.faults.fail_next > 0 {
            s.faults.fail_next -= 1;
            Some(arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An unexpected error occured while processing the request.",
            ))
        } else {
            None
        }
    };
    let query = query_pairs(uri.query().unwrap_or(""));
    let mut response = match fault {
        Some(r) => r,
        None if !query.iter().any(|(k, _)| k == "api-version") => arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ),
        None => {
            let version = query
                .iter()
                .find(|(k, _)| k == "api-version")
                .map_or("", |(_, v)| v.as_str());
            if let Some(r) = super::monitor::route(state, method, uri.path(), version, body)
                .or_else(|| super::graph::route(state, method, uri.path(), version, body))
            {
                r
            } else {
                match super::api_versions::refusal(uri.path(), version) {
                    Some((code, message)) => arm_error(StatusCode::BAD_REQUEST, code, &message),
                    None => route(state, method, uri.path(), &query, body).await,
                }
            }
        }
    };
    // Throttling headers, as Azure sends them, from a budget that shrinks with each request.
    let mut s = state.lock().expect("state");
    s.budget = (s.budget - 1).max(0);
    let b = s.budget;
    let (bucket, sub) = if uri.path().contains("/operations/") {
        ("GetOperation", "reads")
    } else if *method == Method::POST {
        ("UpdateVM", "writes")
    } else {
        ("LowCostGet", "reads")
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Microsoft.Compute/{bucket}3Min;{b},Microsoft.Compute/{bucket}30Min;{}",
        b * 8
    )) {
        h.insert("x-ms-ratelimit-remaining-resource", v);
    }
    h.insert(
        if sub == "reads" {
            "x-ms-ratelimit-remaining-subscription-reads"
        } else {
            "x-ms-ratelimit-remaining-subscription-writes"
        },
        HeaderValue::from(if sub == "reads" { 11999 } else { 1199 }),
    );
    response
}

fn vm_id(sub: &str, vm: &EmulatedVm) -> String {
    super::fleet::vm_resource_id(sub, &vm.resource_group, &vm.name)
}

pub(super) fn nic_id(sub: &str, vm: &EmulatedVm) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}-nic",
        vm.resource_group, vm.name
    )
}

fn ip_id(sub: &str, vm: &EmulatedVm) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.Network/publicIPAddresses/{}-ip",
        vm.resource_group, vm.name
    )
}

fn vm_json(sub: &str, vm: &EmulatedVm, expand_instance_view: bool) -> Value {
    let mut v = json!({
        "name": vm.name,
        "id": vm_id(sub, vm),
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "tags": vm.tags,
        "properties": {
            "vmId": format!("{:08x}-0000-4000-8000-000000000000", vm.name.len()),
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {"osDisk": {"osType": vm.os_type, "name": format!("{}_OsDisk_1", vm.name),
                                          "createOption": "FromImage", "caching": "ReadWrite"}},
            "osProfile": {"computerName": vm.name, "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic_id(sub, vm), "properties": {"primary": true}}]},
            "provisioningState": "Succeeded"
        }
    });
    let (key, config) = if run::Shape::of(&vm.os_type) == run::Shape::Windows {
        (
            "windowsConfiguration",
            json!({"provisionVMAgent": true, "enableAutomaticUpdates": true}),
        )
    } else {
        (
            "linuxConfiguration",
            json!({"disablePasswordAuthentication": true}),
        )
    };
    v["properties"]["osProfile"][key] = config;
    if vm.tags.is_empty() {
        v.as_object_mut().expect("object").remove("tags");
    }
    if expand_instance_view {
        v["properties"]["instanceView"] = instance_view(vm);
    }
    v
}

fn instance_view(vm: &EmulatedVm) -> Value {
    // The power state comes first here on purpose: clients must find it by its prefix.
    let windows = run::Shape::of(&vm.os_type) == run::Shape::Windows;
    let mut v = json!({
        "computerName": vm.name,
        "osName": if windows { "Windows Server 2022 Datacenter" } else { "debian" },
        "osVersion": if windows { "10.0.20348.2700" } else { "12" },
        "statuses": [
            {"code": format!("PowerState/{}", vm.power), "level": "Info", "displayStatus": format!("VM {}", vm.power)},
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "time": "2026-01-01T00:00:00.0000000+00:00"}
        ]
    });
    if vm.power == "running" {
        v["vmAgent"] = if vm.guest_agent_ready {
            json!({"vmAgentVersion": "2.11.1.12", "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                  "displayStatus": "Ready", "message": "Guest Agent is running", "time": "2026-01-01T00:00:00+00:00"}],
                  "extensionHandlers": []})
        } else {
            json!({"vmAgentVersion": "Unknown", "statuses": [{"code": "ProvisioningState/Unavailable", "level": "Warning",
                  "displayStatus": "Not Ready", "message": "VM Agent is unresponsive.", "time": "2026-01-01T00:00:00+00:00"}],
                  "extensionHandlers": []})
        };
    }
    v
}

async fn route(
    state: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Response {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    if l.len() < 2 || l[0] != "subscriptions" {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", "No route.");
    }
    let sub = segs[1];
    if !state.lock().expect("state").knows_subscription(sub) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", segs[1]),
        );
    }
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (method.clone(), &l[2..]) {
        (Method::GET, []) => json_response(
            StatusCode::OK,
            &json!({"id": format!("/subscriptions/{sub}"), "authorizationSource": "RoleBased",
                    "managedByTenants": [], "subscriptionId": sub, "tenantId": TENANT,
                    "displayName": if sub == SUBSCRIPTION { SUBSCRIPTION_NAME } else { "Cryptobot Fleet" },
                    "state": "Enabled",
                    "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                             "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}}),
        ),
        (Method::GET, ["providers", "microsoft.compute", "virtualmachines"]) => {
            list(state, sub, None, path, q("$skiptoken"))
        }
        (
            Method::GET,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.compute",
                "virtualmachines",
            ],
        ) => list(state, sub, Some(segs[3]), path, q("$skiptoken")),
        (
            Method::GET,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.compute",
                "virtualmachines",
                _,
            ],
        ) => with_vm(state, sub, segs[3], segs[7], |vm| {
            json_response(
                StatusCode::OK,
                &vm_json(sub, vm, q("$expand") == Some("instanceView")),
            )
        }),
        (
            Method::GET,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.compute",
                "virtualmachines",
                _,
                "instanceview",
            ],
        ) => with_vm(state, sub, segs[3], segs[7], |vm| {
            json_response(StatusCode::OK, &instance_view(vm))
        }),
        (
            Method::POST,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.compute",
                "virtualmachines",
                _,
                "runcommand",
            ],
        ) => super::operations::run_command(state, sub, segs[3], segs[7], body),
        (
            Method::GET,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.network",
                "networkinterfaces",
                _,
            ],
        ) => {
            let name = segs[7].strip_suffix("-nic").unwrap_or("");
            with_vm(state, sub, segs[3], name, |vm| {
                json_response(
                    StatusCode::OK,
                    &json!({
                    "name": format!("{}-nic", vm.name), "id": nic_id(sub, vm), "location": vm.location,
                    "type": "Microsoft.Network/networkInterfaces",
                    "properties": {"provisioningState": "Succeeded", "primary": true,
                        "ipConfigurations": [{"name": "ipconfig1",
                            "id": format!("{}/ipConfigurations/ipconfig1", nic_id(sub, vm)),
                            "properties": {"privateIPAddress": "10.0.0.4", "privateIPAllocationMethod": "Dynamic",
                                "primary": true, "publicIPAddress": {"id": ip_id(sub, vm)}}}]}}),
                )
            })
        }
        (
            Method::GET,
            [
                "resourcegroups",
                _,
                "providers",
                "microsoft.network",
                "publicipaddresses",
                _,
            ],
        ) => {
            let name = segs[7].strip_suffix("-ip").unwrap_or("");
            with_vm(state, sub, segs[3], name, |vm| {
                let mut props =
                    json!({"provisioningState": "Succeeded", "publicIPAllocationMethod": "Static"});
                if let Some(ip) = &vm.public_ip {
                    props["ipAddress"] = json!(ip);
                }
                json_response(
                    StatusCode::OK,
                    &json!({"name": format!("{}-ip", vm.name), "id": ip_id(sub, vm),
                    "location": vm.location, "type": "Microsoft.Network/publicIPAddresses", "properties": props}),
                )
            })
        }
        (
            Method::GET,
            [
                "providers",
                "microsoft.compute",
                "locations",
                _,
                "operations",
                _,
            ],
        ) => super::operations::operation(state, path, segs[7], q("monitor") == Some("true")),
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No HTTP resource was found that matches {method} {path}."),
        ),
    }
}

fn list(state: &Shared, sub: &str, rg: Option<&str>, path: &str, skip: Option<&str>) -> Response {
    let s = state.lock().expect("state");
    let vms: Vec<&EmulatedVm> = s
        .vms_of(sub)
        .filter(|v| rg.is_none_or(|rg| v.resource_group.eq_ignore_ascii_case(rg)))
        .collect();
    if let Some(rg) = rg {
        if vms.is_empty() {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                &format!("Resource group '{rg}' could not be found."),
            );
        }
    }
    let start: usize = skip.and_then(|k| k.parse().ok()).unwrap_or(0);
    let end = (start + s.page_size).min(vms.len());
    let page: Vec<Value> = vms[start.min(end)..end]
        .iter()
        .map(|v| vm_json(sub, v, false))
        .collect();
    let mut body = json!({"value": page});
    if end < vms.len() {
        body["nextLink"] = json!(format!(
            "{}{path}?api-version={API_VERSION}&%24skiptoken={end}",
            s.link_base()
        ));
    }
    json_response(StatusCode::OK, &body)
}

fn with_vm(
    state: &Shared,
    sub: &str,
    rg: &str,
    name: &str,
    f: impl FnOnce(&EmulatedVm) -> Response,
) -> Response {
    let s = state.lock().expect("state");
    match s.find_vm(sub, rg, name) {
        Some(vm) => f(vm),
        None => arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' was not found."
            ),
        ),
    }
}
