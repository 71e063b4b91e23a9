//! Microsoft Entra's token endpoint and the managed identity endpoint, as the emulator answers
//! them. Tokens go to the service principal's client secret ([`CLIENT_SECRET`]) and to a workload
//! identity's federated token ([`FEDERATED_TOKEN`], the client assertion); the managed identity
//! endpoint answers in the IMDS shape (`expires_on` and `expires_in` as strings) at
//! [`MANAGED_IDENTITY_PATH`], which cryptoctl reaches through `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` (the IMDS address itself, 169.254.169.254, is nowhere a test may send to).

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{CLIENT_ID, CLIENT_SECRET, ManagedIdentity, Shared, TENANT, routes::json_response};

/// The federated token a workload identity's token file holds (a JWT as Kubernetes issues it).
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Ym90czpjcnlwdG9jdGwifQ.c2lnbmF0dXJl";
/// Where the managed identity endpoint answers.
pub const MANAGED_IDENTITY_PATH: &str = "/msi/token";
/// The secret header value the managed identity endpoint wants (`IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "emulator-identity-header";

fn invalid_client(code: u32, text: &str) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "invalid_client",
                "error_description": format!("AADSTS{code}: {text}"),
                "error_codes": [code], "timestamp": "2026-01-01 00:00:00Z",
                "trace_id": "00000000-0000-0000-0000-000000000000",
                "correlation_id": "00000000-0000-0000-0000-000000000000",
                "error_uri": format!("https://login.microsoftonline.com/error?code={code}")}),
    )
}

/// What a captive portal or a misconfigured proxy answers instead of the service.
pub(super) fn html_page() -> Response {
    (
        StatusCode::OK,
        [("content-type", "text/html")],
        "<html><body><h1>Sign in to your network</h1></body></html>",
    )
        .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` with the form `form`.
pub(super) fn token(path: &str, form: &[(String, String)], issued: &str) -> Response {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let common = path == format!("/{TENANT}/oauth2/v2.0/token")
        && get("client_id") == Some(CLIENT_ID)
        && get("grant_type") == Some("client_credentials")
        && get("scope") == Some("https://management.azure.com/.default");
    let secret = get("client_secret") == Some(CLIENT_SECRET);
    let assertion = get("client_assertion_type")
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && get("client_assertion") == Some(FEDERATED_TOKEN);
    if common && (secret || assertion) {
        json_response(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": issued}),
        )
    } else if get("client_assertion").is_some() {
        invalid_client(
            700_211,
            "No matching federated identity record found for presented assertion issuer.",
        )
    } else {
        invalid_client(7_000_215, "Invalid client secret provided.")
    }
}

/// `GET /msi/token?api-version=2019-08-01&resource=…` with `x-identity-header`.
pub(super) async fn managed_identity(
    state: &Shared,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let (mode, issued) = {
        let s = state.lock().expect("state");
        (s.faults.managed_identity, s.token.clone())
    };
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
        || get("api-version") != Some("2019-08-01")
        || get("resource") != Some("https://management.azure.com")
    {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    match mode {
        ManagedIdentity::Absent => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "Identity not found"}),
        ),
        ManagedIdentity::Token => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            json_response(
                StatusCode::OK,
                &json!({"token_type": "Bearer", "expires_in": "85770",
                        "expires_on": (now + 85_770).to_string(), "ext_expires_in": 86_399,
                        "access_token": issued, "resource": "https://management.azure.com"}),
            )
        }
        ManagedIdentity::Html => html_page(),
        ManagedIdentity::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}
