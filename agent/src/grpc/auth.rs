//! Who may call the mutating RPCs (Restart, Pause, Resume, ResetBackoff).
//!
//! On the unix socket everyone who can open the socket may: its file mode and group are the access
//! control. Over TCP a caller needs the metadata `authorization: Bearer <token>` with the configured
//! token, compared in constant time; without a configured token mutating RPCs over TCP are refused.
//! Read-only RPCs and health are always open.

use subtle::ConstantTimeEq;
use tonic::{Status, metadata::MetadataMap};

/// The access rule of one listener.
#[derive(Clone)]
pub enum Access {
    /// Everything is allowed (the unix socket).
    Local,
    /// Mutating RPCs need this bearer token; `None`: they are refused.
    Token(Option<String>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Local => f.write_str("Local"),
            Access::Token(None) => f.write_str("Token(none configured)"),
            Access::Token(Some(_)) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl Access {
    /// Whether a request with this metadata may change something; the error says why not.
    pub fn authorize_mutation(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let expected = match self {
            Access::Local => return Ok(()),
            Access::Token(None) => {
                return Err(Status::permission_denied(
                    "mutating requests over TCP are disabled: the agent has no grpc.token configured; \
                     use the agent's unix socket",
                ));
            }
            Access::Token(Some(token)) => token,
        };
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "this request needs the metadata `authorization: Bearer <token>`",
            ));
        };
        let presented = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        if bool::from(presented.ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn with_auth(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn local_needs_nothing() {
        assert!(
            Access::Local
                .authorize_mutation(&MetadataMap::new())
                .is_ok()
        );
    }

    #[test]
    fn no_configured_token_refuses_everyone() {
        let access = Access::Token(None);
        for m in [
            MetadataMap::new(),
            with_auth("Bearer "),
            with_auth("Bearer x"),
        ] {
            let e = access.authorize_mutation(&m).unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied);
            assert!(e.message().contains("grpc.token"), "{}", e.message());
        }
    }

    #[test]
    fn token_must_match_exactly() {
        let access = Access::Token(Some("s3cret".into()));
        assert!(
            access
                .authorize_mutation(&with_auth("Bearer s3cret"))
                .is_ok()
        );
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "bearer s3cret",
            "s3cret",
            "Bearer  s3cret",
        ] {
            let e = access.authorize_mutation(&with_auth(bad)).unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{bad}");
        }
        let e = access.authorize_mutation(&MetadataMap::new()).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let text = format!("{:?}", Access::Token(Some("s3cret".into())));
        assert!(!text.contains("s3cret"), "{text}");
    }
}
