//! Who this VM is to Azure, from the Instance Metadata Service
//! (`GET {endpoint}/metadata/instance?api-version=2021-02-01` with `Metadata: true`, never through
//! a proxy): its resource id, which the Application Insights sink puts on every envelope
//! (`vm_resource_id`) so that `cryptoctl health --source telemetry` joins telemetry with Resource
//! Graph's inventory exactly, even when two VMs share a name.
//!
//! Off Azure nothing answers at 169.254.169.254: the lookup gives up after its short timeout and
//! the telemetry goes without the id (cryptoctl then matches it by host name and says so). IMDS
//! asks clients to retry 410 (for up to 70 s), 429 and 5xx; [`lookup`] retries those a few times,
//! [`Identity`] spaces out later attempts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::ImdsConfig;

/// Where IMDS answers on every Azure VM.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// The DMI chassis asset tag of every Azure VM.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085";
/// Where the kernel shows the chassis asset tag.
const ASSET_TAG_FILE: &str = "/sys/class/dmi/id/chassis_asset_tag";

/// Whether a chassis asset tag is Azure's.
pub fn is_azure_asset_tag(tag: &str) -> bool {
    tag.trim() == AZURE_ASSET_TAG
}

/// Where to ask, by the configuration: its endpoint, else the standard address on an Azure VM
/// only (so that a machine elsewhere never sends to 169.254.169.254); `None` when switched off.
pub fn endpoint(config: &ImdsConfig) -> Option<String> {
    if !config.enabled {
        return None;
    }
    config.endpoint.clone().or_else(|| {
        std::fs::read_to_string(ASSET_TAG_FILE)
            .is_ok_and(|t| is_azure_asset_tag(&t))
            .then(|| DEFAULT_ENDPOINT.to_owned())
    })
}
/// The api-version asked for.
pub const API_VERSION: &str = "2021-02-01";

/// This VM as IMDS describes it (`compute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmIdentity {
    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/NAME`.
    pub resource_id: String,
    /// The VM's unique id.
    pub vm_id: String,
    /// Its name.
    pub name: String,
    /// Its resource group.
    pub resource_group: String,
    /// Its subscription.
    pub subscription_id: String,
    /// Its region.
    pub location: String,
}

/// Why there is no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImdsError {
    /// Nothing answered (not an Azure VM, or IMDS blocked).
    #[error("IMDS did not answer at {endpoint}: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// IMDS answered with an error.
    #[error("IMDS answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// IMDS's `error` text.
        message: String,
    },
    /// An answer that is not IMDS's.
    #[error("IMDS's answer is not an instance description: {0}")]
    Invalid(String),
}

impl ImdsError {
    /// Worth asking again soon (410, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, ImdsError::Status { status, .. } if *status == 410 || *status == 429 || *status >= 500)
    }
}

/// Reads `compute` of an instance description; every value is a string, missing ones empty.
pub fn parse(body: &[u8]) -> Result<VmIdentity, ImdsError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ImdsError::Invalid(e.to_string()))?;
    let c = &v["compute"];
    let get = |k: &str| c[k].as_str().unwrap_or("").trim().to_owned();
    let id = VmIdentity {
        resource_id: get("resourceId"),
        vm_id: get("vmId"),
        name: get("name"),
        resource_group: get("resourceGroupName"),
        subscription_id: get("subscriptionId"),
        location: get("location"),
    };
    let shaped = id
        .resource_id
        .to_ascii_lowercase()
        .starts_with("/subscriptions/")
        && id
            .resource_id
            .to_ascii_lowercase()
            .contains("/providers/microsoft.compute/");
    if !shaped {
        return Err(ImdsError::Invalid(format!(
            "compute.resourceId is {:?}",
            id.resource_id
        )));
    }
    Ok(id)
}

/// An HTTP client for IMDS: no proxy (IMDS must not be proxied), no redirects, `timeout` for
/// connecting and for the whole answer.
pub fn client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

async fn once(client: &reqwest::Client, endpoint: &str) -> Result<VmIdentity, ImdsError> {
    let url = format!(
        "{}/metadata/instance?api-version={API_VERSION}",
        endpoint.trim_end_matches('/')
    );
    let resp = client
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .map_err(|e| ImdsError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                e.without_url().to_string()
            },
        })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| ImdsError::Unreachable {
        endpoint: endpoint.to_owned(),
        message: e.without_url().to_string(),
    })?;
    if status != 200 {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        return Err(ImdsError::Status { status, message });
    }
    parse(&body)
}

/// Asks IMDS, retrying a transient answer up to three times (after 1, 2 and 4 s).
pub async fn lookup(client: &reqwest::Client, endpoint: &str) -> Result<VmIdentity, ImdsError> {
    let mut delay = Duration::from_secs(1);
    for _ in 0..3 {
        match once(client, endpoint).await {
            Err(e) if e.is_transient() => {
                tracing::debug!(message = "IMDS busy; asking again.", error = %e);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    once(client, endpoint).await
}

/// The identity as the telemetry sink knows it: not asked yet, known, or to be asked again later.
#[derive(Debug)]
pub struct Identity {
    endpoint: Option<String>,
    client: reqwest::Client,
    known: Option<String>,
    next_try: Option<Instant>,
    said: bool,
}

impl Identity {
    /// Looks up through `endpoint`; `None` never looks (IMDS switched off).
    pub fn new(endpoint: Option<String>, timeout: Duration) -> Identity {
        Identity {
            endpoint,
            client: client(timeout),
            known: None,
            next_try: None,
            said: false,
        }
    }

    /// The resource id once known.
    pub fn resource_id(&self) -> Option<&str> {
        self.known.as_deref()
    }

    /// Whether a lookup is due now.
    pub fn due(&self, now: Instant) -> bool {
        self.endpoint.is_some() && self.known.is_none() && self.next_try.is_none_or(|t| now >= t)
    }

    /// Asks IMDS when due: found, it is kept for good; otherwise asked again in a minute after a
    /// transient error, in 10 minutes when nothing answered, in an hour after a wrong answer.
    pub async fn refresh(&mut self) {
        let now = Instant::now();
        if !self.due(now) {
            return;
        }
        let Some(endpoint) = self.endpoint.clone() else {
            return;
        };
        match lookup(&self.client, &endpoint).await {
            Ok(id) => {
                tracing::info!(
                    message = "VM identity read from IMDS.",
                    resource_id = %id.resource_id
                );
                self.known = Some(id.resource_id);
            }
            Err(e) => {
                let wait = match &e {
                    e if e.is_transient() => Duration::from_secs(60),
                    ImdsError::Unreachable { .. } => Duration::from_secs(600),
                    _ => Duration::from_secs(3600),
                };
                if !self.said {
                    tracing::warn!(
                        message = "No VM identity from IMDS; telemetry goes without the resource id.",
                        error = %e
                    );
                    self.said = true;
                }
                self.next_try = Some(Instant::now() + wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_parses() {
        // imds/GetInstanceMetadata.2021-02-01.json (its compute section, shortened)
        let body = br#"{"compute":{"azEnvironment":"AZUREPUBLICCLOUD","location":"westus","name":"examplevmname",
            "resourceGroupName":"macikgo-test-may-23",
            "resourceId":"/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/macikgo-test-may-23/providers/Microsoft.Compute/virtualMachines/examplevmname",
            "subscriptionId":"8d10da13-8125-4ba9-a717-bf7490507b3d","vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6","zone":""}}"#;
        let id = parse(body).unwrap();
        assert_eq!(id.name, "examplevmname");
        assert!(id.resource_id.ends_with("/virtualMachines/examplevmname"));
        assert_eq!(id.vm_id, "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
        for bad in [
            &b"<html>portal</html>"[..],
            br#"{"compute":{"resourceId":""}}"#,
            b"{}",
        ] {
            assert!(matches!(parse(bad), Err(ImdsError::Invalid(_))));
        }
    }

    #[test]
    fn transient_errors() {
        let s = |status| ImdsError::Status {
            status,
            message: String::new(),
        };
        assert!(s(410).is_transient() && s(429).is_transient() && s(503).is_transient());
        assert!(!s(400).is_transient() && !s(404).is_transient());
        assert!(
            is_azure_asset_tag("7783-7084-3265-9085\n") && !is_azure_asset_tag("Default string")
        );
        let cfg = ImdsConfig {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..ImdsConfig::default()
        };
        assert_eq!(endpoint(&cfg).as_deref(), Some("http://127.0.0.1:9"));
        let off = ImdsConfig {
            enabled: false,
            ..cfg
        };
        assert_eq!(endpoint(&off), None);
        let off = Identity::new(None, Duration::from_secs(1));
        assert!(!off.due(Instant::now()));
        let on = Identity::new(Some(DEFAULT_ENDPOINT.into()), Duration::from_secs(1));
        assert!(on.due(Instant::now()) && on.resource_id().is_none());
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = client(Duration::from_secs(2));
        let started = Instant::now();
        let e = lookup(&c, &format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(matches!(e, ImdsError::Unreachable { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
