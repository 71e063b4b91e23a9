//! The Azure Monitor query APIs in the emulator, on its own address (in Azure they are
//! `api.applicationinsights.io` and `api.loganalytics.io`): `POST /v1/apps/{appId}/query` over
//! `customMetrics` and `availabilityResults`, and `POST /v1/workspaces/{workspaceId}/query` over
//! `AppMetrics` and `AppAvailabilityResults`, both holding the telemetry of [`super::fleet`].
//! Wire shapes as documented: `{"tables":[{"name":"PrimaryResult","columns":[{"name","type"}],
//! "rows":[[…]]}]}` with cells as strings for Application Insights (as the v1 specification's
//! examples have them) and native values for Log Analytics; errors as `{"error":{"message","code",
//! "innererror"}}`; an empty `200` to a request without a JSON content type; the body's
//! `timespan` applied on top of the query's own filters.
//!
//! Each API wants a token for its own audience: the token endpoint here also issues those (to the
//! same credentials it accepts for Resource Manager), and a Resource Manager token sent to a query
//! API gets `403 InvalidAuthenticationTokenAudience`.

use axum::{
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    CLIENT_ID, CLIENT_SECRET, Shared, TENANT,
    fleet::{APP_ID, WORKSPACE_ID},
    identity::FEDERATED_TOKEN,
    kql, logs,
    routes::{json_response, query_pairs},
};

/// The audiences of the two APIs.
const AUDIENCES: [&str; 2] = [
    "https://api.applicationinsights.io",
    "https://api.loganalytics.io",
];

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "code": code}}),
    )
}

/// The access token the emulator issues for `audience`: the Resource Manager token's claims with
/// that `aud`.
fn token_for(state: &Shared, audience: &str) -> String {
    use base64::Engine as _;
    let arm = state.lock().expect("state").token.clone();
    let claims = arm
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice::<Value>(&c).ok())
        .unwrap_or_else(super::service_principal_claims);
    let mut claims = claims;
    claims["aud"] = json!(audience);
    super::access_token(&claims)
}

/// Answers the token requests for the query APIs' audiences and the query APIs themselves;
/// `None` for anything else (a token request with wrong credentials included, which the token
/// endpoint then refuses as usual).
pub(super) async fn handle(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let path = uri.path();
    if *method == Method::POST && path == format!("/{TENANT}/oauth2/v2.0/token") {
        let form = query_pairs(&String::from_utf8_lossy(body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let audience = AUDIENCES
            .iter()
            .find(|a| get("scope") == Some(format!("{a}/.default").as_str()))?;
        let credential = get("client_secret") == Some(CLIENT_SECRET)
            || (get("client_assertion_type")
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && get("client_assertion") == Some(FEDERATED_TOKEN));
        if get("client_id") != Some(CLIENT_ID)
            || get("grant_type") != Some("client_credentials")
            || !credential
        {
            return None;
        }
        return Some(json_response(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": token_for(state, audience)}),
        ));
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (kind, id) = match segs.as_slice() {
        ["v1", kind @ ("apps" | "workspaces"), id, "query"] => (*kind, *id),
        ["v1", ..] => {
            return Some(error(
                StatusCode::NOT_FOUND,
                "PathNotFoundError",
                "The requested path does not exist",
            ));
        }
        _ => return None,
    };
    Some(query(state, method, kind, id, headers, body))
}

fn query(
    state: &Shared,
    method: &Method,
    kind: &str,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let app = kind == "apps";
    let audience = if app { AUDIENCES[0] } else { AUDIENCES[1] };
    state.lock().expect("state").fleet.stats.query_requests += 1;
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            );
        }
        Some(h) if h == format!("Bearer {}", token_for(state, audience)) => {}
        Some(h) if h == format!("Bearer {}", state.lock().expect("state").token) => {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidAuthenticationTokenAudience",
                &format!(
                    "The access token has been obtained from wrong audience or resource 'https://management.azure.com'. It should exactly match (including forward slash) with one of the allowed audiences '{audience}'."
                ),
            );
        }
        Some(_) => {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
    }
    if *method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Use POST with a JSON body.",
        );
    }
    let known = if app { APP_ID } else { WORKSPACE_ID };
    if !id.eq_ignore_ascii_case(known) {
        return error(
            StatusCode::NOT_FOUND,
            "PathNotFoundError",
            "The requested path does not exist",
        );
    }
    {
        let mut s = state.lock().expect("state");
        let f = &mut s.fleet.faults;
        if f.query_throttle_next > 0 {
            f.query_throttle_next -= 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottledError",
                "Your request was throttled. Please retry after some time.",
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(f.query_retry_after));
            return r;
        }
        if f.query_fail_next > 0 {
            f.query_fail_next -= 1;
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "An unexpected error occurred.",
            );
        }
    }
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body || body.is_empty() {
        // what the service answers a request without a JSON body
        return (StatusCode::OK, "").into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The request had some invalid properties",
        );
    };
    let Some(text) = req["query"].as_str() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "The request had some invalid properties", "code": "BadArgumentError",
                    "innererror": {"code": "QueryValidationError", "message": "A query is required"}}}),
        );
    };
    let now = logs::now_ms();
    let (tables, faults) = {
        let mut s = state.lock().expect("state");
        (s.fleet.tables(), s.fleet.faults.clone())
    };
    let base = if app {
        &tables.app_insights
    } else {
        &tables.log_analytics
    };
    // the body's timespan, on top of the query's own filters
    let since = match req["timespan"].as_str() {
        None => None,
        Some(span) => match iso_duration_ms(span) {
            Some(ms) => Some(logs::rfc3339(now - ms)),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadArgumentError",
                    &format!("Invalid timespan '{span}'"),
                );
            }
        },
    };
    let scoped;
    let older = |since: &str| {
        base.values().any(|t| {
            t.rows
                .iter()
                .any(|r| r[0].as_str().is_some_and(|x| x < since))
        })
    };
    let tables = match &since {
        Some(since) if older(since) => {
            scoped = base
                .iter()
                .map(|(name, t)| {
                    let mut t = t.clone();
                    t.rows
                        .retain(|r| r[0].as_str().is_some_and(|x| x >= since.as_str()));
                    (name.clone(), t)
                })
                .collect();
            &scoped
        }
        _ => base,
    };
    let mut result = match kql::run(text, tables, now) {
        Ok(t) => t,
        Err(e) => {
            let inner = match e {
                kql::KqlError::Syntax(_) => "SyntaxError",
                kql::KqlError::Semantic(_) => "SemanticError",
            };
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"message": "The request had some invalid properties", "code": "BadArgumentError",
                        "innererror": {"code": inner, "message": e.to_string()}}}),
            );
        }
    };
    if let Some(drop) = &faults.query_drop_column
        && let Some(i) = result.columns.iter().position(|c| c == drop)
    {
        result.columns.remove(i);
        result.rows.iter_mut().for_each(|r| {
            r.remove(i);
        });
    }
    if faults.query_reverse_columns {
        result.columns.reverse();
        result.rows.iter_mut().for_each(|r| r.reverse());
    }
    if faults.query_partial {
        let half = result.rows.len() / 2;
        result.rows.truncate(half);
    }
    let columns: Vec<Value> = result
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"name": c, "type": column_type(c, result.rows.iter().map(|r| &r[i]))}))
        .collect();
    let rows: Vec<Value> = result
        .rows
        .into_iter()
        .map(|r| {
            Value::Array(
                r.into_iter()
                    .map(|v| match v {
                        // the v1 Application Insights API types every cell as a string
                        Value::Number(n) if app => json!(n.to_string()),
                        Value::Bool(b) if app => json!(b.to_string()),
                        Value::Object(_) | Value::Array(_) => json!(v.to_string()),
                        v => v,
                    })
                    .collect(),
            )
        })
        .collect();
    let mut body = json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]});
    if faults.query_partial {
        body["error"] = json!({"code": "PartialError", "message": "There were some errors when processing your query.",
            "details": [{"code": "EngineError", "message": "Something went wrong processing your query on the server.",
                         "innererror": {"code": "-2133196797", "message": "The results of this query exceed the set limit of 500000 records, so not all records were returned (E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003)."}}]});
    }
    json_response(StatusCode::OK, &body)
}

fn column_type<'a>(name: &str, mut cells: impl Iterator<Item = &'a Value>) -> &'static str {
    match cells.find(|v| !v.is_null()) {
        Some(Value::Number(_)) => "real",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Object(_) | Value::Array(_)) => "dynamic",
        Some(Value::String(s)) if super::fleet::parse_time(s).is_some() => "datetime",
        _ if name == "time" || name == "timestamp" || name == "TimeGenerated" => "datetime",
        _ => "string",
    }
}

/// `P2D`, `PT12H`, `PT10M`, `P1DT2H` in milliseconds.
fn iso_duration_ms(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut ms = 0i64;
    for (part, units) in [
        (date, [('D', 86_400_000), ('W', 604_800_000)]),
        (time, [('H', 3_600_000), ('M', 60_000)]),
    ] {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else if c == 'S' && part == time {
                ms += num.parse::<i64>().ok()? * 1000;
                num.clear();
            } else {
                let unit = units.iter().find(|(u, _)| *u == c)?.1;
                ms += num.parse::<i64>().ok()? * unit;
                num.clear();
            }
        }
        if !num.is_empty() {
            return None;
        }
    }
    (ms > 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(iso_duration_ms("P2D"), Some(172_800_000));
        assert_eq!(iso_duration_ms("PT12H"), Some(43_200_000));
        assert_eq!(iso_duration_ms("P1DT30M"), Some(88_200_000));
        assert_eq!(iso_duration_ms("2d"), None);
        assert_eq!(iso_duration_ms("P"), None);
    }
}
