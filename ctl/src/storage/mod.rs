//! A small Azure Blob Storage client on reqwest, for handing the agent to VMs without hosting it:
//! upload with the operator's Entra token (audience `https://storage.azure.com/`) as Put Block
//! (4 MiB blocks, each with `Content-MD5`, block ids of one length) then Put Block List (with the
//! whole blob's `x-ms-blob-content-md5` and content type), Get User Delegation Key, and a read-only
//! user delegation SAS for that one blob ([`sas`]). Every request sends `x-ms-version`
//! [`STORAGE_VERSION`]. The service's errors keep its code (`AuthorizationPermissionMismatch`,
//! `ContainerNotFound`, …) and its `AuthenticationErrorDetail`.
//!
//! The endpoint is `https://{account}.blob.core.windows.net`; `CRYPTOCTL_BLOB_ENDPOINT` (a base URL
//! whose first path segment is the account, the path style of storage emulators) replaces it.

pub mod sas;

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};

use crate::{
    auth::{AuthError, TokenSource},
    validate::storage::StorageTarget,
};
pub use sas::{Secret, UserDelegationKey};

/// The `x-ms-version` of every request.
pub const STORAGE_VERSION: &str = "2023-11-03";
/// The token scope of Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The environment variable that replaces the endpoint (path style: `{base}/{account}`).
pub const ENDPOINT_ENV: &str = "CRYPTOCTL_BLOB_ENDPOINT";
/// Size of one Put Block.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// A failed Blob Storage call.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No token for Azure Storage.
    #[error("no token for Azure Storage: {0}")]
    Auth(#[from] AuthError),
    /// The request did not reach the service.
    #[error("cannot reach {url} (does storage account {account} exist?): {message}")]
    Unreachable {
        /// The account.
        account: String,
        /// The URL (never with a SAS).
        url: String,
        /// Why.
        message: String,
    },
    /// The service refused the request.
    #[error("{}", describe_refusal(*.status, .code, .message, .detail.as_deref()))]
    Service {
        /// HTTP status.
        status: u16,
        /// `x-ms-error-code` / `<Code>`.
        code: String,
        /// `<Message>`, first line.
        message: String,
        /// `<AuthenticationErrorDetail>`.
        detail: Option<String>,
    },
    /// The service answered something this client cannot read.
    #[error("unexpected answer from Blob Storage: {0}")]
    Protocol(String),
}

fn describe_refusal(status: u16, code: &str, message: &str, detail: Option<&str>) -> String {
    let mut s = format!("Blob Storage answered {status} {code}: {message}");
    if let Some(d) = detail {
        s.push_str(&format!(" ({d})"));
    }
    match code {
        "AuthorizationPermissionMismatch" | "AuthorizationFailure" => s.push_str(
            "; the signed-in identity needs the Storage Blob Data Contributor role on the account or container",
        ),
        "ContainerNotFound" => s.push_str("; create the container first"),
        _ => {}
    }
    s
}

/// The error of a response body (`<Error><Code>…`) and headers.
fn refusal(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &str) -> StorageError {
    let header_code = headers
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let code = sas::xml_text(body, "Code")
        .map(str::to_owned)
        .or(header_code)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("error")
                .replace(' ', "")
        });
    let message = sas::xml_text(body, "Message")
        .and_then(|m| m.lines().next())
        .unwrap_or("")
        .to_owned();
    StorageError::Service {
        status: status.as_u16(),
        code,
        message,
        detail: sas::xml_text(body, "AuthenticationErrorDetail").map(str::to_owned),
    }
}

/// The base64 MD5 of `data`.
pub fn content_md5(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::compute(data).0)
}

/// The lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id of block `i`: base64 of a fixed-length text, so every id of a blob has one length.
pub fn block_id(i: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("block-{i:06}"))
}

/// The account's endpoint: `https://{account}.blob.core.windows.net`, or `{base}/{account}` when
/// [`ENDPOINT_ENV`] is set.
pub fn account_base(account: &str) -> String {
    match std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty()) {
        Some(e) => format!("{}/{account}", e.trim_end_matches('/')),
        None => format!("https://{account}.blob.core.windows.net"),
    }
}

/// A client for one storage account.
#[derive(Debug, Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    account: String,
    /// `https://{account}.blob.core.windows.net` (or the replaced endpoint), without a slash.
    base: String,
}

impl BlobClient {
    /// A client for `account`, at its public endpoint unless [`ENDPOINT_ENV`] replaces it.
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        account: &str,
    ) -> anyhow::Result<BlobClient> {
        let base = account_base(account);
        anyhow::ensure!(
            base.starts_with("https://"),
            "{ENDPOINT_ENV}: Blob Storage is reached over https only"
        );
        Ok(BlobClient {
            http,
            tokens,
            account: account.to_owned(),
            base,
        })
    }

    /// The URL of a blob, without a query.
    pub fn blob_url(&self, container: &str, blob: &str) -> String {
        format!("{}/{container}/{blob}", self.base)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        expect: StatusCode,
    ) -> Result<String, StorageError> {
        let token = self.tokens.token(STORAGE_SCOPE).await?;
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("x-ms-version", STORAGE_VERSION)
            .header(
                "x-ms-date",
                Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )
            .timeout(Duration::from_secs(300));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| StorageError::Unreachable {
                account: self.account.clone(),
                url: shown,
                message: crate::arm::client::error_chain(&e),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if status == expect {
            Ok(text)
        } else {
            Err(refusal(status, &headers, &text))
        }
    }

    /// Uploads `data` as block blob `container/blob` (Put Block per [`BLOCK_SIZE`], then Put Block
    /// List).
    pub async fn upload(
        &self,
        container: &str,
        blob: &str,
        data: &[u8],
        content_type: &str,
    ) -> Result<(), StorageError> {
        let url = self.blob_url(container, blob);
        let mut ids = Vec::new();
        for (i, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
            let id = block_id(i);
            self.send(
                Method::PUT,
                &format!("{url}?comp=block&blockid={}", sas::encode(&id)),
                &[
                    ("content-md5", content_md5(chunk)),
                    ("content-length", chunk.len().to_string()),
                ],
                chunk.to_vec(),
                StatusCode::CREATED,
            )
            .await?;
            ids.push(id);
        }
        let list = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{}</BlockList>",
            ids.iter()
                .map(|id| format!("<Latest>{id}</Latest>"))
                .collect::<String>()
        );
        self.send(
            Method::PUT,
            &format!("{url}?comp=blocklist"),
            &[
                ("content-type", "application/xml".to_owned()),
                ("content-md5", content_md5(list.as_bytes())),
                ("x-ms-blob-content-md5", content_md5(data)),
                ("x-ms-blob-content-type", content_type.to_owned()),
            ],
            list.into_bytes(),
            StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }

    /// Get User Delegation Key for `start..expiry`.
    pub async fn user_delegation_key(
        &self,
        start: DateTime<Utc>,
        expiry: DateTime<Utc>,
    ) -> Result<UserDelegationKey, StorageError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            sas::sas_time(start),
            sas::sas_time(expiry)
        );
        let text = self
            .send(
                Method::POST,
                &format!("{}/?restype=service&comp=userdelegationkey", self.base),
                &[("content-type", "application/xml".to_owned())],
                body.into_bytes(),
                StatusCode::OK,
            )
            .await?;
        UserDelegationKey::parse(&text).map_err(StorageError::Protocol)
    }
}

/// An agent (binary or package) staged in Blob Storage: the key that signs one short SAS per VM.
#[derive(Debug, Clone)]
pub struct StagedBlob {
    /// Where it is.
    pub target: StorageTarget,
    /// Its name in the container.
    pub blob: String,
    /// Its URL without a query.
    pub url: String,
    /// The user delegation key.
    pub key: UserDelegationKey,
}

impl StagedBlob {
    /// A read-only SAS valid from a little before now (clock skew) for `lifetime`.
    pub fn sas(&self, lifetime: Duration) -> Result<Secret, String> {
        let now = Utc::now();
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1));
        sas::BlobSas {
            account: &self.target.account,
            container: &self.target.container,
            blob: &self.blob,
            start: now - chrono::Duration::minutes(5),
            expiry: now + lifetime,
        }
        .query(&self.key)
    }
}

/// Uploads `data` to `target` as `blob` and gets a user delegation key valid for `key_lifetime`
/// (at most 7 days, the service's limit).
pub async fn stage(
    client: &BlobClient,
    target: &StorageTarget,
    blob: &str,
    data: &[u8],
    content_type: &str,
    key_lifetime: Duration,
) -> Result<StagedBlob, StorageError> {
    client
        .upload(&target.container, blob, data, content_type)
        .await?;
    let now = Utc::now();
    let life = chrono::Duration::from_std(key_lifetime)
        .unwrap_or(chrono::Duration::days(7))
        .min(chrono::Duration::days(7) - chrono::Duration::minutes(10));
    let key = client
        .user_delegation_key(now - chrono::Duration::minutes(5), now + life)
        .await?;
    Ok(StagedBlob {
        target: target.clone(),
        blob: blob.to_owned(),
        url: client.blob_url(&target.container, blob),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length_and_errors_keep_the_service_code() {
        assert_eq!(block_id(0).len(), block_id(123_456).len());
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.\nRequestId:x\nTime:y</Message></Error>";
        let e = refusal(StatusCode::FORBIDDEN, &Default::default(), body).to_string();
        assert!(e.starts_with("Blob Storage answered 403 AuthorizationPermissionMismatch: This request is not authorized"), "{e}");
        assert!(!e.contains("RequestId"), "{e}");
    }
}
