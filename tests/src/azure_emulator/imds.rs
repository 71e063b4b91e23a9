//! The Instance Metadata Service of one emulated VM, on plain http on 127.0.0.1 (in Azure it is
//! `http://169.254.169.254`, where no test may send): `GET /metadata/instance` and
//! `/metadata/instance/compute` with `?api-version=` and the `Metadata: true` header, answering in
//! the 2021-02-01 shape (every primitive a string) with the VM's resource id, name, resource
//! group, subscription and location. A request without the header, with `X-Forwarded-For`, or
//! without a known api-version gets IMDS's `400 {"error": …}`; statuses queued with
//! [`Imds::fail_next`] (410, 429, 500) answer first, as IMDS does while it is busy or updating.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// The api-versions IMDS answers to (instance metadata).
const VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
];

#[derive(Debug, Default)]
struct Inner {
    compute: Value,
    fail_next: Vec<u16>,
    requests: u32,
}

/// A running IMDS (it stops with the runtime that started it).
#[derive(Debug, Clone)]
pub struct Imds {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// The `compute` section IMDS gives a VM (the 2021-02-01 shape, strings throughout).
pub fn compute(subscription: &str, resource_group: &str, name: &str, location: &str) -> Value {
    json!({
        "azEnvironment": "AzurePublicCloud", "location": location, "name": name,
        "offer": "debian-12", "osType": "Linux", "placementGroupId": "", "platformFaultDomain": "0",
        "platformUpdateDomain": "0", "priority": "", "provider": "Microsoft.Compute", "publisher": "Debian",
        "resourceGroupName": resource_group,
        "resourceId": super::fleet::vm_resource_id(subscription, resource_group, name),
        "sku": "12-gen2", "subscriptionId": subscription, "tags": "", "tagsList": [],
        "userData": "", "version": "0.20240101.1", "vmId": format!("{:08x}-74ef-476e-8182-f6d2ba4166a6", name.len()),
        "vmScaleSetName": "", "vmSize": "Standard_B2s", "zone": "",
        "osProfile": {"adminUsername": "azureuser", "computerName": name, "disablePasswordAuthentication": "true"},
    })
}

fn refuse(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json; charset=utf-8")],
        json!({"error": message, "newest-versions": ["2023-07-01", "2021-12-13", "2021-11-15"]})
            .to_string(),
    )
        .into_response()
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = inner.lock().expect("imds");
    s.requests += 1;
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return refuse("Bad request. Required metadata header not specified");
    }
    if headers.contains_key("x-forwarded-for") {
        return refuse("Bad request. Request contains X-Forwarded-For header");
    }
    match q.get("api-version") {
        None => {
            return refuse(
                "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds",
            );
        }
        Some(v) if !VERSIONS.contains(&v.as_str()) => {
            return refuse(
                "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
            );
        }
        Some(_) => {}
    }
    if !s.fail_next.is_empty() {
        let status = s.fail_next.remove(0);
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error": "Service is busy. Retry after some time."}).to_string(),
        )
            .into_response();
    }
    let body = match uri.path() {
        "/metadata/instance" => json!({"compute": s.compute, "network": {"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": ""}],
                     "subnet": [{"address": "10.0.0.0", "prefix": "24"}]},
            "ipv6": {"ipAddress": []}, "macAddress": "000D3AF806EC"}]}}),
        "/metadata/instance/compute" => s.compute.clone(),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                json!({"error": "Not found"}).to_string(),
            )
                .into_response();
        }
    };
    (
        StatusCode::OK,
        [
            ("content-type", "application/json; charset=utf-8"),
            ("server", "IMDS/150.870.65.1325"),
        ],
        body.to_string(),
    )
        .into_response()
}

impl Imds {
    /// Starts one for a VM (its `compute` section, see [`compute`]) on the current tokio runtime.
    pub async fn start(compute: Value) -> Imds {
        let inner = Arc::new(Mutex::new(Inner {
            compute,
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("address");
        let app = Router::new().fallback(answer).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Imds { addr, inner }
    }

    /// `http://127.0.0.1:PORT`, for the agent's `alerts.appinsights.imds_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests answer these statuses, one each, before the metadata.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.inner.lock().expect("imds").fail_next.extend(statuses);
    }

    /// Requests so far.
    pub fn requests(&self) -> u32 {
        self.inner.lock().expect("imds").requests
    }
}
