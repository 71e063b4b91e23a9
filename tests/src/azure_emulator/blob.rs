//! Azure Blob Storage as the emulator answers it, path style (`/{account}/{container}/{blob}`, as
//! storage emulators do) on a listener of its own: Put Block (`Content-MD5` checked, block ids of one
//! length per blob), Put Block List (`<BlockList><Latest>…`), Get Blob, and Get User Delegation Key
//! (`POST /{account}/?restype=service&comp=userdelegationkey`), all with a bearer token for audience
//! `https://storage.azure.com/` and `x-ms-version`; and Get Blob with a user delegation SAS, checked
//! like the service checks it: the signature over the string-to-sign of versions 2020-12-06 and
//! later, the time frame, then the permissions. Errors are the service's XML with its codes
//! (`AuthenticationFailed` with `<AuthenticationErrorDetail>`, `AuthorizationPermissionMismatch`,
//! `ContainerNotFound`, `BlobNotFound`, `Md5Mismatch`, `InvalidBlockList`, `InvalidResourceName`).
//! An account that does not exist answers 404 `ResourceNotFound` (Azure's own answer is a name that
//! does not resolve).
//!
//! The service listens on 127.0.0.1 and, at the same port, on 127.0.0.1 inside each lab VM's network
//! namespace, so one URL works from the host and from the VMs.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::{Seen, Shared, routes::query_pairs};

/// The scope of Azure Storage tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The root of every user delegation key the emulator hands out.
const ROOT_KEY: &[u8] = b"emulator user delegation root key";

#[derive(Debug, Default, Clone)]
struct StoredBlob {
    data: Vec<u8>,
    content_type: String,
    content_md5: Option<String>,
}

#[derive(Debug, Default)]
struct Container {
    blobs: BTreeMap<String, StoredBlob>,
    /// Uncommitted blocks per blob, by id.
    blocks: HashMap<String, HashMap<String, Vec<u8>>>,
}

#[derive(Debug, Default)]
struct Account {
    containers: BTreeMap<String, Container>,
}

/// The emulated storage accounts and the storage-side behaviour tests change.
#[derive(Debug, Default)]
pub struct Store {
    accounts: BTreeMap<String, Account>,
    /// The access token for audience `https://storage.azure.com`.
    pub(super) token: String,
    /// Accounts whose data plane refuses the token (no Storage Blob Data role).
    pub refuse_token: HashSet<String>,
    /// How far ahead of the real clock the service's clock is when it checks a SAS.
    pub sas_clock_ahead: chrono::Duration,
}

impl Store {
    /// A store whose token is `arm_token`'s claims for audience `https://storage.azure.com`.
    pub(super) fn new(arm_token: &str) -> Store {
        let claims = arm_token
            .split('.')
            .nth(1)
            .and_then(|c| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
            })
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok());
        let mut claims = claims.unwrap_or_else(super::service_principal_claims);
        claims["aud"] = "https://storage.azure.com".into();
        Store {
            token: super::access_token(&claims),
            ..Store::default()
        }
    }

    /// Adds an account with these containers.
    pub fn add_account(&mut self, name: &str, containers: &[&str]) {
        let a = self.accounts.entry(name.to_owned()).or_default();
        for c in containers {
            a.containers.entry((*c).to_owned()).or_default();
        }
    }

    /// A committed blob's content.
    pub fn blob(&self, account: &str, container: &str, name: &str) -> Option<Vec<u8>> {
        let c = self.accounts.get(account)?.containers.get(container)?;
        c.blobs.get(name).map(|b| b.data.clone())
    }
}

/// For a token request with the storage scope: puts the Resource Manager scope in its place (so
/// the identity module checks the credentials the same way) and says so.
pub(super) fn for_storage(form: &mut [(String, String)]) -> bool {
    match form
        .iter_mut()
        .find(|(k, v)| k == "scope" && v == STORAGE_SCOPE)
    {
        Some(pair) => {
            pair.1 = "https://management.azure.com/.default".into();
            true
        }
        None => false,
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn rfc1123(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The service's error document.
fn error(status: StatusCode, code: &str, message: &str, detail: Option<&str>) -> Response {
    let now = Utc::now();
    let request_id = format!("{:032x}", now.timestamp_nanos_opt().unwrap_or(0));
    let detail = detail.map_or(String::new(), |d| {
        format!(
            "<AuthenticationErrorDetail>{}</AuthenticationErrorDetail>",
            xml_escape(d)
        )
    });
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{request_id}\nTime:{}</Message>{detail}</Error>",
        xml_escape(message),
        now.format("%Y-%m-%dT%H:%M:%S%.6f0Z")
    );
    (
        status,
        [
            ("content-type", "application/xml".to_owned()),
            ("x-ms-error-code", code.to_owned()),
            ("x-ms-request-id", request_id),
        ],
        body,
    )
        .into_response()
}

fn auth_failed(detail: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        Some(detail),
    )
}

fn permission_mismatch() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "AuthorizationPermissionMismatch",
        "This request is not authorized to perform this operation using this permission.",
        None,
    )
}

fn not_found(code: &str) -> Response {
    let message = match code {
        "ContainerNotFound" => "The specified container does not exist.",
        "BlobNotFound" => "The specified blob does not exist.",
        _ => "The specified resource does not exist.",
    };
    error(StatusCode::NOT_FOUND, code, message, None)
}

fn valid_container(c: &str) -> bool {
    (3..=63).contains(&c.len())
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !c.starts_with('-')
        && !c.ends_with('-')
        && !c.contains("--")
}

/// The value of the user delegation key with these signed fields.
fn key_value(account: &str, fields: &[&str]) -> Vec<u8> {
    let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ROOT_KEY);
    let text = format!("{account}\n{}", fields.join("\n"));
    ring::hmac::sign(&root, text.as_bytes()).as_ref().to_vec()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

/// The blob service.
pub(super) async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = serve(&state, &method, &uri, &headers, &body);
    let shown = match uri.query() {
        Some(q) if q.contains("sig=") => format!("{}?***", uri.path()),
        _ => uri.to_string(),
    };
    state.lock().expect("state").seen.push(Seen {
        method: method.to_string(),
        uri: shown,
        status: response.status().as_u16(),
        at: std::time::Instant::now(),
    });
    response
}

fn serve(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let query = query_pairs(uri.query().unwrap_or(""));
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut parts = uri.path().trim_start_matches('/').splitn(3, '/');
    let account = parts.next().unwrap_or("").to_owned();
    let container = parts.next().unwrap_or("").to_owned();
    let blob = parts.next().unwrap_or("").to_owned();
    let mut s = state.lock().expect("state");
    if q("sig").is_some() {
        return sas_get(&s.blob, method, &account, &container, &blob, &query);
    }
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return not_found("ResourceNotFound");
    };
    let store = &mut s.blob;
    if auth != format!("Bearer {}", store.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationInfo",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
            Some("Audience validation failed. Audience did not match."),
        );
    }
    match header("x-ms-version") {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
                None,
            );
        }
        Some(v) if v < "2020-12-06" => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
                None,
            );
        }
        Some(_) => {}
    }
    if !store.accounts.contains_key(&account) {
        return not_found("ResourceNotFound");
    }
    if store.refuse_token.contains(&account) {
        return permission_mismatch();
    }
    if *method == Method::POST
        && container.is_empty()
        && q("restype") == Some("service")
        && q("comp") == Some("userdelegationkey")
    {
        return delegation_key(&account, &String::from_utf8_lossy(body));
    }
    if !valid_container(&container) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceName",
            "The specifed resource name contains invalid characters.",
            None,
        );
    }
    let Some(c) = store
        .accounts
        .get_mut(&account)
        .and_then(|a| a.containers.get_mut(&container))
    else {
        return not_found("ContainerNotFound");
    };
    match (method.as_str(), q("comp")) {
        ("PUT", Some("block")) => put_block(c, &blob, q("blockid"), header("content-md5"), body),
        ("PUT", Some("blocklist")) => put_block_list(
            c,
            &blob,
            &String::from_utf8_lossy(body),
            header("x-ms-blob-content-type"),
            header("x-ms-blob-content-md5"),
        ),
        ("GET" | "HEAD", None) => get_blob(c, &blob, method),
        _ => error(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryParameter",
            "One of the query parameters specified in the request URI is not supported.",
            None,
        ),
    }
}

fn delegation_key(account: &str, body: &str) -> Response {
    let (Some(start), Some(expiry)) = (
        xml_text(body, "Start").and_then(parse_time),
        xml_text(body, "Expiry").and_then(parse_time),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
            None,
        );
    };
    let now = Utc::now();
    if expiry <= now || expiry - now > chrono::Duration::days(7) || expiry <= start {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidXmlNodeValue",
            "The value for one of the XML nodes is not in the correct format.",
            None,
        );
    }
    let (oid, tid) = (super::OBJECT_ID, super::TENANT);
    let (st, se) = (
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    let version = "2023-11-03";
    let value = B64.encode(key_value(account, &[oid, tid, &st, &se, "b", version]));
    let xml = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey><SignedOid>{oid}</SignedOid><SignedTid>{tid}</SignedTid><SignedStart>{st}</SignedStart><SignedExpiry>{se}</SignedExpiry><SignedService>b</SignedService><SignedVersion>{version}</SignedVersion><Value>{value}</Value></UserDelegationKey>"
    );
    (StatusCode::OK, [("content-type", "application/xml")], xml).into_response()
}

fn put_block(
    c: &mut Container,
    blob: &str,
    id: Option<&str>,
    md5: Option<&str>,
    body: &[u8],
) -> Response {
    let Some(id) = id.filter(|i| B64.decode(i).is_ok_and(|d| !d.is_empty() && d.len() <= 64))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidQueryParameterValue",
            "Value for one of the query parameters specified in the request URI is invalid.",
            None,
        );
    };
    let blocks = c.blocks.entry(blob.to_owned()).or_default();
    if blocks.keys().any(|k| k.len() != id.len()) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidBlobOrBlock",
            "The specified blob or block content is invalid.",
            None,
        );
    }
    let actual = B64.encode(md5::compute(body).0);
    if md5.is_some_and(|m| m != actual) {
        return error(
            StatusCode::BAD_REQUEST,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
            None,
        );
    }
    blocks.insert(id.to_owned(), body.to_vec());
    (
        StatusCode::CREATED,
        [
            ("content-md5", actual),
            ("x-ms-request-server-encrypted", "true".to_owned()),
        ],
    )
        .into_response()
}

fn put_block_list(
    c: &mut Container,
    blob: &str,
    xml: &str,
    content_type: Option<&str>,
    content_md5: Option<&str>,
) -> Response {
    let blocks = c.blocks.remove(blob).unwrap_or_default();
    let mut data = Vec::new();
    let mut rest = xml;
    let mut listed = 0;
    while let Some(i) = rest.find("<Latest>").or_else(|| rest.find("<Uncommitted>")) {
        let open = if rest[i..].starts_with("<Latest>") {
            "<Latest>"
        } else {
            "<Uncommitted>"
        };
        let after = &rest[i + open.len()..];
        let Some(end) = after.find("</") else { break };
        let Some(block) = blocks.get(&after[..end]) else {
            c.blocks.insert(blob.to_owned(), blocks);
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidBlockList",
                "The specified block list is invalid.",
                None,
            );
        };
        data.extend_from_slice(block);
        listed += 1;
        rest = &after[end..];
    }
    if listed == 0 && !xml.contains("<BlockList") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
            None,
        );
    }
    c.blobs.insert(
        blob.to_owned(),
        StoredBlob {
            data,
            content_type: content_type
                .unwrap_or("application/octet-stream")
                .to_owned(),
            content_md5: content_md5.map(str::to_owned),
        },
    );
    (
        StatusCode::CREATED,
        [("etag", format!("\"0x8D{:X}\"", Utc::now().timestamp()))],
    )
        .into_response()
}

fn get_blob(c: &Container, blob: &str, method: &Method) -> Response {
    let Some(b) = c.blobs.get(blob) else {
        return not_found("BlobNotFound");
    };
    let mut headers = vec![
        ("content-type", b.content_type.clone()),
        ("x-ms-blob-type", "BlockBlob".to_owned()),
    ];
    if let Some(m) = &b.content_md5 {
        headers.push(("content-md5", m.clone()));
    }
    let mut r = if *method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, b.data.clone()).into_response()
    };
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// Get Blob with a user delegation SAS: signature, time frame, permissions, then the blob.
fn sas_get(
    store: &Store,
    method: &Method,
    account: &str,
    container: &str,
    blob: &str,
    query: &[(String, String)],
) -> Response {
    let q = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    for k in [
        "sv", "sr", "sp", "se", "skoid", "sktid", "skt", "ske", "sks", "skv",
    ] {
        if q(k).is_empty() {
            return auth_failed(&format!("{k} is mandatory. Cannot be empty"));
        }
    }
    let resource = format!("/blob/{account}/{container}/{blob}");
    let mut fields = vec![q("sp"), q("st"), q("se"), resource.as_str()];
    fields.extend(
        [
            "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "sip", "spr",
            "sv", "sr", "snapshot", "ses", "rscc", "rscd", "rsce", "rscl", "rsct",
        ]
        .map(q),
    );
    let sign = fields.join("\n");
    let key = key_value(
        account,
        &[
            q("skoid"),
            q("sktid"),
            q("skt"),
            q("ske"),
            q("sks"),
            q("skv"),
        ],
    );
    let expected = B64.encode(
        ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            sign.as_bytes(),
        )
        .as_ref(),
    );
    if q("sig") != expected || !store.accounts.contains_key(account) {
        return auth_failed(&format!(
            "Signature did not match. String to sign used was {sign}"
        ));
    }
    let (Some(se), st) = (parse_time(q("se")), parse_time(q("st"))) else {
        return auth_failed("se is not a valid time");
    };
    if let Some(st) = st
        && se <= st
    {
        return auth_failed(&format!(
            "Signed expiry time [{}] must be after signed start time [{}]",
            rfc1123(se),
            rfc1123(st)
        ));
    }
    let now = Utc::now() + store.sas_clock_ahead;
    let key_expired = parse_time(q("ske")).is_none_or(|ske| now > ske);
    if now > se || st.is_some_and(|st| now < st) || key_expired {
        return auth_failed(&format!(
            "Signature not valid in the specified time frame: Start [{}] - Expiry [{}] - Current [{}]",
            st.map_or(String::new(), rfc1123),
            rfc1123(se),
            rfc1123(now)
        ));
    }
    if q("sr") != "b"
        || !q("sp").contains('r')
        || (*method != Method::GET && *method != Method::HEAD)
    {
        return permission_mismatch();
    }
    match store
        .accounts
        .get(account)
        .and_then(|a| a.containers.get(container))
    {
        None => not_found("ContainerNotFound"),
        Some(c) => get_blob(c, blob, method),
    }
}
