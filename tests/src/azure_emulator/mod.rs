//! An Azure emulator for cryptoctl's end-to-end tests: HTTPS on 127.0.0.1 with a test CA, the
//! Entra token endpoint (its access token is JWT-shaped, with claims a test can choose, and unsigned),
//! and the Resource Manager calls cryptoctl makes, with Azure's wire shapes: the subscription, VM list (paged with `nextLink`), get, instance view, NIC and public IP, and action run-command as
//! a long-running operation (202 + `Azure-AsyncOperation` + `Location`, `InProgress` then
//! `Succeeded`, the final result from `Location`, Linux `[stdout]`/`[stderr]` framing in one
//! message, only the last 4096 bytes of stdout, no exit code, one run-command at a time per VM with
//! 409 otherwise), throttling headers, and 429/500 on demand. A VM can say its guest agent is not
//! Ready (run-command would then fail on Azure; here the emulator keeps answering, so a client that
//! tries anyway is visible in [`AzureEmulator::seen`]). A VM whose `osType` is Windows answers with
//! the Windows result shape (one `ComponentStatus/StdOut/succeeded` and one
//! `ComponentStatus/StdErr/succeeded` status, CRLF line ends); Azure itself refuses
//! `RunShellScript` there, so this exercises a client's result parsing only.
//!
//! A VM is backed by a lab VM (each script runs as root inside it: `bash -s` with the script on
//! stdin and the parameters as `$1..`), by nothing (a synthetic VM answering a canned healthy
//! result, for scale), or hangs (its run-commands never finish).
//!
//! Azure Blob Storage ([`blob`]) listens on a port of its own, also reachable at the same address
//! from inside the lab VMs.

mod api_versions;
pub mod blob;
pub mod fleet;
mod graph;
pub mod identity;
pub mod imds;
mod kql;
pub mod logs;
mod monitor;
mod operations;
mod query_api;
mod routes;
mod run;
pub mod tls;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{ServerThread, Vm};

/// The subscription the emulator serves.
pub const SUBSCRIPTION: &str = "00000000-0000-4000-8000-00000000c0de";
/// The tenant and client the token endpoint accepts.
pub const TENANT: &str = "11111111-1111-4111-8111-111111111111";
/// Client id for the environment credential.
pub const CLIENT_ID: &str = "22222222-2222-4222-8222-222222222222";
/// Client secret for the environment credential.
pub const CLIENT_SECRET: &str = "emulator-secret";
/// The subscription's display name.
pub const SUBSCRIPTION_NAME: &str = "Cryptobot Emulated";
/// The object id of the service principal the default token names.
pub const OBJECT_ID: &str = "33333333-3333-4333-8333-333333333333";

/// The claims of the default access token: the service principal of [`CLIENT_ID`], as Entra issues
/// them for Resource Manager.
pub fn service_principal_claims() -> serde_json::Value {
    serde_json::json!({
        "aud": "https://management.azure.com",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": 1_767_225_600, "nbf": 1_767_225_600, "exp": 4_102_444_800u64,
        "appid": CLIENT_ID,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{TENANT}/"),
        "idtyp": "app",
        "oid": OBJECT_ID,
        "sub": OBJECT_ID,
        "tid": TENANT,
        "ver": "1.0"
    })
}

/// An access token in the JWT shape (`header.claims.signature`, base64url) with these claims and a
/// signature that is not one: clients may read the claims but must not rely on them.
pub fn access_token(claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"typ":"JWT","alg":"RS256","kid":"emulator"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"emulator-signature-not-verifiable")
    )
}

/// What runs a VM's scripts.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A lab VM.
    Lab(Vm),
    /// No machine: every run-command answers a canned healthy result.
    Synthetic,
    /// Run-commands never finish (the guest agent still says Ready).
    Hang,
}

/// One emulated VM.
#[derive(Debug, Clone)]
pub struct EmulatedVm {
    /// Name.
    pub name: String,
    /// Resource group.
    pub resource_group: String,
    /// Region.
    pub location: String,
    /// Size.
    pub size: String,
    /// Power state code (`running`, `deallocated`, `stopped`, ...).
    pub power: String,
    /// Whether the guest agent says Ready.
    pub guest_agent_ready: bool,
    /// `Linux` or `Windows`.
    pub os_type: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The public IP address (the lab VM's address for a lab VM).
    pub public_ip: Option<String>,
    /// What runs scripts.
    pub backend: Backend,
}

impl EmulatedVm {
    fn new(name: &str, resource_group: &str, backend: Backend) -> EmulatedVm {
        EmulatedVm {
            name: name.to_owned(),
            resource_group: resource_group.to_owned(),
            location: "westeurope".to_owned(),
            size: "Standard_B2s".to_owned(),
            power: "running".to_owned(),
            guest_agent_ready: true,
            os_type: "Linux".to_owned(),
            tags: BTreeMap::new(),
            public_ip: None,
            backend,
        }
    }

    /// A VM backed by a lab VM (reachable over ssh at the lab VM's address).
    pub fn lab(name: &str, resource_group: &str, vm: &Vm) -> EmulatedVm {
        let mut e = EmulatedVm::new(name, resource_group, Backend::Lab(vm.clone()));
        e.public_ip = Some(vm.ip.clone());
        e
    }

    /// A VM with nothing behind it, answering a canned healthy result.
    pub fn synthetic(name: &str, resource_group: &str) -> EmulatedVm {
        EmulatedVm::new(name, resource_group, Backend::Synthetic)
    }

    /// A VM whose run-commands never finish.
    pub fn hanging(name: &str, resource_group: &str) -> EmulatedVm {
        EmulatedVm::new(name, resource_group, Backend::Hang)
    }

    /// Sets the power state code.
    pub fn power(mut self, code: &str) -> EmulatedVm {
        self.power = code.to_owned();
        self
    }

    /// Sets whether the guest agent says Ready (it does by default).
    pub fn guest_agent_ready(mut self, ready: bool) -> EmulatedVm {
        self.guest_agent_ready = ready;
        self
    }

    /// Makes the VM a Windows VM (`osType` Windows, Windows run-command result shape).
    pub fn windows(mut self) -> EmulatedVm {
        self.os_type = "Windows".to_owned();
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: &str, value: &str) -> EmulatedVm {
        self.tags.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the public IP address.
    pub fn public_ip(mut self, ip: &str) -> EmulatedVm {
        self.public_ip = Some(ip.to_owned());
        self
    }
}

/// Faults and behaviour that tests change while the emulator runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N Resource Manager requests answer 429.
    pub throttle_next: u32,
    /// `Retry-After` seconds sent with those 429s.
    pub throttle_retry_after: u64,
    /// The next N Resource Manager requests answer 500.
    pub fail_next: u32,
    /// The next N run-commands on a VM (by name) answer 409 as if another one were running.
    pub conflict_next: HashMap<String, u32>,
    /// `Retry-After` seconds sent with a 409 (none when 0, like Azure).
    pub conflict_retry_after: u64,
    /// Delay added to every Resource Manager request.
    pub latency: Duration,
    /// How long a synthetic VM's run-command stays InProgress.
    pub synthetic_run_time: Duration,
    /// `Retry-After` seconds sent with a run-command's 202 and polls (none when 0, like Azure).
    pub poll_retry_after: u64,
    /// How the managed identity endpoint answers.
    pub managed_identity: ManagedIdentity,
    /// The token endpoint answers an HTML page (a proxy or captive portal in the way).
    pub token_html: bool,
    /// Links handed out point at this other origin (`https://host:port`): a hostile or broken
    /// service that would lure the client's token elsewhere.
    pub foreign_links: Option<String>,
}

/// The managed identity endpoint's behaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ManagedIdentity {
    /// No identity assigned: `400 Identity not found`, as IMDS answers.
    #[default]
    Absent,
    /// A token, in the IMDS shape.
    Token,
    /// An HTML page (a captive portal or proxy in the way).
    Html,
    /// No answer for a minute.
    Hang,
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Status answered.
    pub status: u16,
    /// When it was answered.
    pub at: std::time::Instant,
}

#[derive(Debug)]
struct Operation {
    /// The VM's resource id, lower case (the key of `State::busy`).
    vm: String,
    started: String,
    result: Option<serde_json::Value>,
}

#[derive(Debug)]
struct State {
    base: String,
    vms: Vec<EmulatedVm>,
    page_size: usize,
    faults: Faults,
    /// Remaining request budget reported in the throttling headers.
    budget: i64,
    busy: HashMap<String, String>,
    operations: HashMap<String, Operation>,
    seen: Vec<Seen>,
    next_id: u64,
    scripts: Vec<(String, Vec<String>)>,
    /// The access token the token endpoint hands out and Resource Manager accepts.
    token: String,
    /// Azure Monitor resources (action groups, alert rules, components, workspaces).
    monitor: monitor::Store,
    /// Resource Graph, the query APIs' telemetry and fleets beyond this subscription.
    fleet: fleet::Store,
    /// Blob Storage accounts.
    blob: blob::Store,
}

impl State {
    /// Whether Resource Manager knows `subscription`: the emulator's own, or one a fleet has VMs
    /// in.
    fn knows_subscription(&self, subscription: &str) -> bool {
        subscription == SUBSCRIPTION
            || self
                .fleet
                .extra_vms
                .iter()
                .any(|v| v.subscription == subscription)
    }

    /// The VMs of `subscription`, in the order they were added.
    fn vms_of<'a>(
        &'a self,
        subscription: &'a str,
    ) -> Box<dyn Iterator<Item = &'a EmulatedVm> + 'a> {
        if subscription == SUBSCRIPTION {
            Box::new(self.vms.iter())
        } else {
            Box::new(
                self.fleet
                    .extra_vms
                    .iter()
                    .filter(move |v| v.subscription == subscription)
                    .map(|v| &v.vm),
            )
        }
    }

    /// One VM by subscription, resource group and name (the last two case-insensitively, as
    /// Resource Manager compares them).
    fn find_vm<'a>(
        &'a self,
        subscription: &'a str,
        rg: &str,
        name: &str,
    ) -> Option<&'a EmulatedVm> {
        self.vms_of(subscription).find(|v| {
            v.resource_group.eq_ignore_ascii_case(rg) && v.name.eq_ignore_ascii_case(name)
        })
    }

    /// Where the links Resource Manager hands out (`nextLink`, `Location`,
    /// `Azure-AsyncOperation`) point: here, or the host of [`Faults::foreign_links`].
    fn link_base(&self) -> String {
        self.faults
            .foreign_links
            .clone()
            .unwrap_or_else(|| self.base.clone())
    }
}

type Shared = Arc<Mutex<State>>;

/// Options of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    vms: Vec<EmulatedVm>,
    page_size: usize,
    faults: Faults,
    budget: i64,
    claims: serde_json::Value,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            vms: Vec::new(),
            page_size: 50,
            faults: Faults::default(),
            budget: 3999,
            claims: service_principal_claims(),
        }
    }
}

impl EmulatorBuilder {
    /// Adds a VM.
    pub fn vm(mut self, vm: EmulatedVm) -> Self {
        self.vms.push(vm);
        self
    }

    /// VMs per page of a list.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Initial faults.
    pub fn faults(mut self, f: Faults) -> Self {
        self.faults = f;
        self
    }

    /// The request budget the throttling headers start from (one less per request).
    pub fn budget(mut self, n: i64) -> Self {
        self.budget = n;
        self
    }

    /// The claims of the access token (default: [`service_principal_claims`]).
    pub fn token_claims(mut self, claims: serde_json::Value) -> Self {
        self.claims = claims;
        self
    }

    /// Starts the emulator on 127.0.0.1 with a random port, in a thread of its own.
    pub fn start(self) -> AzureEmulator {
        let pki = tls::test_pki().expect("test CA");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_file = dir.path().join("emulator-ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).expect("write the CA");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("address").port();
        let base = format!("https://127.0.0.1:{port}");
        let blob_std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let blob_port = blob_std.local_addr().expect("address").port();
        let mut blob_listeners = vec![blob_std];
        for vm in &self.vms {
            if let Backend::Lab(lab_vm) = &vm.backend {
                blob_listeners.push(
                    crate::webhook::listen_in(&lab_vm.netns, "127.0.0.1", blob_port)
                        .expect("blob listener in a lab VM"),
                );
            }
        }
        for l in &blob_listeners {
            l.set_nonblocking(true).expect("nonblocking");
        }
        let token = access_token(&self.claims);
        let state: Shared = Arc::new(Mutex::new(State {
            base: base.clone(),
            vms: self.vms,
            page_size: self.page_size,
            faults: self.faults,
            budget: self.budget,
            busy: HashMap::new(),
            operations: HashMap::new(),
            seen: Vec::new(),
            next_id: 0,
            scripts: Vec::new(),
            blob: blob::Store::new(&token),
            token,
            monitor: monitor::Store::default(),
            fleet: fleet::Store::default(),
        }));
        let app = routes::router(state.clone());
        let blob_app = axum::Router::new()
            .fallback(blob::handle)
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(state.clone());
        let server = pki.server.clone();
        let server = ServerThread::spawn("azure-emulator", move |stop| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(64)
                .enable_all()
                .build()
                .expect("emulator runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                for l in blob_listeners {
                    let l = tokio::net::TcpListener::from_std(l).expect("listener");
                    tokio::spawn(tls::serve(l, server.clone(), blob_app.clone()));
                }
                tokio::select! {
                    _ = tls::serve(listener, server, app) => {}
                    _ = stop => {}
                }
            });
            rt.shutdown_background();
        });
        AzureEmulator {
            base,
            blob_base: format!("https://127.0.0.1:{blob_port}"),
            ca_file,
            _dir: dir,
            state,
            _server: server,
        }
    }
}

/// A running emulator; stopped when dropped.
#[derive(Debug)]
pub struct AzureEmulator {
    base: String,
    blob_base: String,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    state: Shared,
    _server: ServerThread,
}

impl AzureEmulator {
    /// Options.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// The test CA's PEM file.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// The environment cryptoctl needs to use this emulator: the ARM endpoint, the test CA, the
    /// environment credential with the authority host pointing here, the subscription, and a short
    /// run-command poll interval.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CRYPTOCTL_ARM_ENDPOINT", self.base.clone()),
            ("SSL_CERT_FILE", self.ca_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", self.base.clone()),
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION.to_owned()),
            ("CRYPTOCTL_POLL_INTERVAL", "200ms".to_owned()),
            ("CRYPTOCTL_BLOB_ENDPOINT", self.blob_base.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Changes the faults.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.lock().expect("state").faults);
    }

    /// Changes a VM (by name).
    pub fn set_vm(&self, name: &str, f: impl FnOnce(&mut EmulatedVm)) {
        let mut s = self.state.lock().expect("state");
        let vm = s
            .vms
            .iter_mut()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no emulated VM {name}"));
        f(vm);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("state").seen.clone()
    }

    /// The access token the emulator hands out (for tests that check it is never printed).
    pub fn token(&self) -> String {
        self.state.lock().expect("state").token.clone()
    }

    /// Changes the Blob Storage accounts and behaviour.
    pub fn set_storage(&self, f: impl FnOnce(&mut blob::Store)) {
        f(&mut self.state.lock().expect("state").blob);
    }

    /// A committed blob's content.
    pub fn blob(&self, account: &str, container: &str, name: &str) -> Option<Vec<u8>> {
        self.state
            .lock()
            .expect("state")
            .blob
            .blob(account, container, name)
    }

    /// Every script run so far: (VM name, parameters).
    pub fn scripts(&self) -> Vec<(String, Vec<String>)> {
        self.state.lock().expect("state").scripts.clone()
    }
}
