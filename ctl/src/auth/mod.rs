//! Azure credentials, in the usual order: the environment (`AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`; `AZURE_AUTHORITY_HOST` honoured), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE`), managed identity, then the Azure CLI. The first credential that
//! yields a token is kept for the rest of the run; a configured credential (environment or workload
//! identity) that fails stops the chain with its error instead of falling through to the others. All token calls go through cryptoctl's own HTTP
//! client ([`transport`]).
//!
//! Also: the subscription (`--subscription`, `AZURE_SUBSCRIPTION_ID`, else the Azure CLI's
//! default), and who the credentials are ([`identity`]).

pub mod identity;
pub mod transport;

use std::{sync::Arc, time::Duration};

use azure_core::{
    credentials::{Secret, TokenCredential},
    http::{ClientOptions, Transport},
};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use tokio::sync::OnceCell;

use crate::validate::SubscriptionId;

/// How long the managed identity endpoint may take before the chain moves on (off Azure there
/// is nothing at the IMDS address and a connection attempt would hang).
const MANAGED_IDENTITY_PROBE: Duration = Duration::from_secs(3);

/// Credentials that exist only because the operator configured them.
const CONFIGURED: [&str; 2] = ["environment", "workload identity"];

/// No credential produced a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Every credential of the chain failed; each one's reason.
    #[error("no Azure credential worked:\n{}", .0.iter().map(|(n, e)| format!("  {n}: {e}")).collect::<Vec<_>>().join("\n"))]
    NoCredential(Vec<(&'static str, String)>),
    /// The credential that worked before failed now.
    #[error("{0} failed: {1}")]
    Failed(&'static str, String),
}

/// Something that hands out bearer tokens.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A token for `scope`.
    async fn token(&self, scope: &str) -> Result<String, AuthError>;
}

/// A credential of the chain, or why it is not available.
type Candidate = Result<Arc<dyn TokenCredential>, String>;

/// The credential chain.
#[derive(Debug)]
pub struct CredentialChain {
    candidates: Vec<(&'static str, Candidate)>,
    chosen: OnceCell<usize>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl CredentialChain {
    /// The chain, with token calls over `http`.
    pub fn new(http: &reqwest::Client) -> CredentialChain {
        let client_options = || ClientOptions {
            transport: Some(Transport::new(Arc::new(transport::ReqwestTransport(
                http.clone(),
            )))),
            ..Default::default()
        };
        let mut candidates: Vec<(&'static str, Candidate)> = Vec::new();
        match (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) {
            (Some(tenant), Some(client), Some(secret)) => candidates.push((
                "environment",
                ClientSecretCredential::new(
                    &tenant,
                    client,
                    Secret::new(secret),
                    Some(ClientSecretCredentialOptions {
                        client_options: client_options(),
                    }),
                )
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| e.to_string()),
            )),
            _ => candidates.push((
                "environment",
                Err(
                    "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not all set"
                        .into(),
                ),
            )),
        }
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let mut options = WorkloadIdentityCredentialOptions::default();
            options.credential_options.client_options = client_options();
            candidates.push((
                "workload identity",
                WorkloadIdentityCredential::new(Some(options))
                    .map(|c| c as Arc<dyn TokenCredential>)
                    .map_err(|e| e.to_string()),
            ));
        } else {
            candidates.push((
                "workload identity",
                Err("AZURE_FEDERATED_TOKEN_FILE is not set".into()),
            ));
        }
        candidates.push((
            "managed identity",
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                client_options: client_options(),
                ..Default::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| e.to_string()),
        ));
        candidates.push((
            "Azure CLI",
            AzureCliCredential::new(None)
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| e.to_string()),
        ));
        CredentialChain {
            candidates,
            chosen: OnceCell::new(),
        }
    }

    /// The name of the credential that produced a token (`environment`, `Azure CLI`, ...), once
    /// one has.
    pub fn chosen(&self) -> Option<&'static str> {
        self.chosen.get().map(|&i| self.candidates[i].0)
    }

    async fn try_one(
        name: &'static str,
        cred: &Arc<dyn TokenCredential>,
        scope: &str,
    ) -> Result<String, String> {
        let scopes = [scope];
        let call = cred.get_token(&scopes, None);
        let result = if name == "managed identity" {
            match tokio::time::timeout(MANAGED_IDENTITY_PROBE, call).await {
                Ok(r) => r,
                Err(_) => return Err("no managed identity endpoint answered".into()),
            }
        } else {
            call.await
        };
        result
            .map(|t| t.token.secret().to_owned())
            .map_err(|e| one_line(&e.to_string()))
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait::async_trait]
impl TokenSource for CredentialChain {
    async fn token(&self, scope: &str) -> Result<String, AuthError> {
        if let Some(&i) = self.chosen.get() {
            let (name, cred) = &self.candidates[i];
            let cred = cred.as_ref().expect("chosen credential exists");
            return Self::try_one(name, cred, scope)
                .await
                .map_err(|e| AuthError::Failed(name, e));
        }
        let mut errors = Vec::new();
        for (i, (name, cred)) in self.candidates.iter().enumerate() {
            let cred = match cred {
                Ok(c) => c,
                Err(e) => {
                    errors.push((*name, e.clone()));
                    continue;
                }
            };
            match Self::try_one(name, cred, scope).await {
                Ok(token) => {
                    tracing::debug!(credential = name, "using this credential");
                    let _ = self.chosen.set(i);
                    return Ok(token);
                }
                // A credential the operator configured explicitly (environment, workload identity)
                // that fails is an error to report, not a reason to try the next one.
                Err(e) if CONFIGURED.contains(name) => return Err(AuthError::Failed(name, e)),
                Err(e) => errors.push((*name, e)),
            }
        }
        Err(AuthError::NoCredential(errors))
    }
}

/// The subscription: the given one, else the Azure CLI's default.
pub async fn subscription(given: Option<&str>) -> anyhow::Result<SubscriptionId> {
    if let Some(s) = given.filter(|s| !s.is_empty()) {
        return Ok(s.parse()?);
    }
    let out = tokio::process::Command::new("az")
        .args(["account", "show", "--query", "id", "-o", "tsv"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID (the Azure CLI, az, could not be run: {e})"
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID (az account show failed: {})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
