//! Error answers: always a small JSON object with an `error` key, never an empty body or HTML.

use axum::{
    Json,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// `status` with `{"error": message, ...extra}`.
pub fn json_error(status: StatusCode, message: &str, extra: &[(&str, &str)]) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("error".into(), json!(message));
    for (key, value) in extra {
        body.insert((*key).into(), json!(value));
    }
    (status, Json(serde_json::Value::Object(body))).into_response()
}

/// 404 for paths that are not served.
pub async fn not_found(req: Request) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not found",
        &[("path", req.uri().path())],
    )
}

/// 405 for methods a path does not answer (the router adds the `Allow` header).
pub async fn method_not_allowed(req: Request) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        &[
            ("method", req.method().as_str()),
            ("path", req.uri().path()),
        ],
    )
}

/// 401: a token is configured but was not presented, or not the right one.
pub fn unauthorized(path: &str) -> Response {
    let mut response = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &[
            ("path", path),
            ("hint", "send Authorization: Bearer <token>"),
        ],
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"cryptobot-agent\""),
    );
    response
}

/// 403: no token is configured and the endpoint is not public, so only loopback may ask.
pub fn forbidden(path: &str) -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &[
            ("path", path),
            (
                "hint",
                "only loopback clients may ask unless http.token or http.public is set",
            ),
        ],
    )
}

/// What the tower timeout (or any other middleware error) turns into.
pub async fn timed_out(error: tower::BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        json_error(StatusCode::REQUEST_TIMEOUT, "request timed out", &[])
    } else {
        tracing::error!(error = %error, "http middleware failed");
        json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", &[])
    }
}
