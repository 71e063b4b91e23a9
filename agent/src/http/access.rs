//! Who may ask what. `/health` is public; every other path answers clients outside loopback only
//! when they present the configured bearer token, or when `http.public` is set. Loopback clients
//! (127.0.0.0/8, ::1, and IPv4-mapped loopback on dual-stack listeners) are always allowed.
//!
//! The decision is the pure function [`decide`]; the `check` middleware applies it to requests.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use subtle::ConstantTimeEq as _;

use super::{AppState, errors};
use crate::config::HttpConfig;

/// Paths anyone may ask for.
pub const PUBLIC_PATHS: &[&str] = &["/health"];

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve the request.
    Allow,
    /// A token is configured and was missing or wrong: 401 with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// No token is configured and the endpoint is not public: 403.
    Forbidden,
}

/// Decides whether `peer` may ask for `path`, given the raw `Authorization` header (if any).
pub fn decide(
    peer: IpAddr,
    path: &str,
    authorization: Option<&[u8]>,
    config: &HttpConfig,
) -> Access {
    if PUBLIC_PATHS.contains(&path) || config.public || is_loopback(peer) {
        return Access::Allow;
    }
    let Some(token) = config.token.as_deref() else {
        return Access::Forbidden;
    };
    match authorization.and_then(bearer_token) {
        Some(presented) if bool::from(presented.ct_eq(token.as_bytes())) => Access::Allow,
        _ => Access::Unauthorized,
    }
}

/// Loopback, also when an IPv4 client reaches an IPv6 socket as `::ffff:127.x.y.z`.
pub fn is_loopback(peer: IpAddr) -> bool {
    peer.to_canonical().is_loopback()
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first()?.eq(&b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Middleware: answers 401 or 403 instead of calling the handler when [`decide`] says so.
pub(crate) async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Without the peer address (which the server always adds) nobody counts as loopback.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let path = req.uri().path();
    match decide(peer, path, authorization, &state.config) {
        Access::Allow => next.run(req).await,
        Access::Unauthorized => {
            tracing::debug!(%peer, path, "http request without a valid token");
            errors::unauthorized(path)
        }
        Access::Forbidden => {
            tracing::debug!(%peer, path, "http request from outside loopback refused");
            errors::forbidden(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TOKEN: &str = "0123456789abcdef-secret";

    fn config(token: Option<&str>, public: bool) -> HttpConfig {
        HttpConfig {
            listen: None,
            token: token.map(str::to_owned),
            public,
            max_connections: 4,
            max_connections_per_ip: 4,
            header_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const REMOTE: &[&str] = &["10.0.0.5", "192.168.1.20", "2001:db8::1", "::ffff:10.0.0.5"];
    const LOCAL: &[&str] = &["127.0.0.1", "127.10.20.30", "::1", "::ffff:127.0.0.1"];

    #[test]
    fn health_is_public_for_everyone() {
        for cfg in [
            config(None, false),
            config(Some(TOKEN), false),
            config(None, true),
        ] {
            for peer in REMOTE.iter().chain(LOCAL) {
                assert_eq!(
                    decide(ip(peer), "/health", None, &cfg),
                    Access::Allow,
                    "{peer}"
                );
            }
        }
    }

    #[test]
    fn loopback_is_always_allowed() {
        for cfg in [config(None, false), config(Some(TOKEN), false)] {
            for peer in LOCAL {
                for path in ["/", "/metrics", "/other"] {
                    assert_eq!(
                        decide(ip(peer), path, None, &cfg),
                        Access::Allow,
                        "{peer} {path}"
                    );
                    assert_eq!(
                        decide(ip(peer), path, Some(b"Bearer wrong-token-xxxxxx"), &cfg),
                        Access::Allow,
                        "{peer} {path} with a wrong token"
                    );
                }
            }
        }
    }

    #[test]
    fn remote_without_token_configured_is_forbidden() {
        let cfg = config(None, false);
        for peer in REMOTE {
            for path in ["/", "/metrics", "/unknown", "/health/"] {
                assert_eq!(
                    decide(ip(peer), path, None, &cfg),
                    Access::Forbidden,
                    "{peer} {path}"
                );
                let auth = format!("Bearer {TOKEN}");
                assert_eq!(
                    decide(ip(peer), path, Some(auth.as_bytes()), &cfg),
                    Access::Forbidden,
                    "{peer} {path}: a token means nothing when none is configured"
                );
            }
        }
    }

    #[test]
    fn remote_with_the_right_token_is_allowed() {
        let cfg = config(Some(TOKEN), false);
        for auth in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER  {TOKEN} "),
        ] {
            for peer in REMOTE {
                for path in ["/", "/metrics"] {
                    assert_eq!(
                        decide(ip(peer), path, Some(auth.as_bytes()), &cfg),
                        Access::Allow,
                        "{peer} {path} {auth:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn remote_with_a_missing_or_wrong_token_is_unauthorized() {
        let cfg = config(Some(TOKEN), false);
        let wrong: &[&[u8]] = &[
            b"",
            b"Bearer",
            b"Bearer ",
            b"Bearer 0123456789abcdef-secreT",
            b"Bearer 0123456789abcdef-secret2",
            b"Bearer 0123456789abcdef-secre",
            b"Basic MDEyMzQ1Njc4OWFiY2RlZi1zZWNyZXQ=",
            b"Bearer0123456789abcdef-secret",
            b"Token 0123456789abcdef-secret",
            b"0123456789abcdef-secret",
            b"Bearer \xff\xfe",
        ];
        for peer in REMOTE {
            for path in ["/", "/metrics"] {
                assert_eq!(
                    decide(ip(peer), path, None, &cfg),
                    Access::Unauthorized,
                    "{peer} {path} without a header"
                );
                for auth in wrong {
                    assert_eq!(
                        decide(ip(peer), path, Some(auth), &cfg),
                        Access::Unauthorized,
                        "{peer} {path} {:?}",
                        String::from_utf8_lossy(auth)
                    );
                }
            }
        }
    }

    #[test]
    fn public_opens_everything() {
        for cfg in [config(None, true), config(Some(TOKEN), true)] {
            for peer in REMOTE {
                for path in ["/", "/metrics"] {
                    assert_eq!(decide(ip(peer), path, None, &cfg), Access::Allow);
                }
            }
        }
    }

    #[test]
    fn loopback_detection() {
        for peer in LOCAL {
            assert!(is_loopback(ip(peer)), "{peer}");
        }
        for peer in REMOTE.iter().chain(&["0.0.0.0", "::", "128.0.0.1", "::2"]) {
            assert!(!is_loopback(ip(peer)), "{peer}");
        }
    }
}
