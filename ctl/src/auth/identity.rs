//! Who the credentials are, for the operator to see before anything changes: the claims of the
//! Resource Manager access token (`upn`/`unique_name`, `appid`, `oid`, `tid`, `idtyp`,
//! `xms_mirid`), decoded without verifying the signature. The claims are only printed, never
//! trusted for a decision, and the token itself is never printed.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

/// The claims of an access token that name its holder (each absent claim is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// A user's sign-in name.
    pub upn: Option<String>,
    /// A user's name in v1 tokens (often the same as `upn`; guests have only this).
    pub unique_name: Option<String>,
    /// The application (client) id.
    pub appid: Option<String>,
    /// The application id in v2 tokens.
    pub azp: Option<String>,
    /// The object id of the user or service principal.
    pub oid: Option<String>,
    /// The tenant.
    pub tid: Option<String>,
    /// `app` or `user`.
    pub idtyp: Option<String>,
    /// A managed identity's resource id.
    pub xms_mirid: Option<String>,
}

impl Identity {
    /// The claims of a JWT-shaped access token; `None` when the token is opaque or its claims do
    /// not parse. The signature is not checked: this is for display only.
    pub fn from_access_token(token: &str) -> Option<Identity> {
        let mut parts = token.split('.');
        let (_header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims.trim_end_matches('='))
            .ok()?;
        let identity: Identity = serde_json::from_slice(&bytes).ok()?;
        (identity != Identity::default()).then_some(identity)
    }

    fn user(&self) -> Option<&str> {
        self.upn.as_deref().or(self.unique_name.as_deref())
    }

    fn is_app(&self) -> bool {
        match self.idtyp.as_deref() {
            Some(t) => t == "app",
            None => self.user().is_none(),
        }
    }
}

impl fmt::Display for Identity {
    /// `alice@example.com (user, object id …, tenant …)`, `application 2222… (service principal,
    /// …)` or `managed identity /subscriptions/…/userAssignedIdentities/x (application …, …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = self.appid.as_deref().or(self.azp.as_deref());
        let mut details: Vec<String> = Vec::new();
        if let Some(mi) = &self.xms_mirid {
            write!(f, "managed identity {mi}")?;
            if let Some(a) = app {
                details.push(format!("application {a}"));
            }
        } else if self.is_app() || self.user().is_none() {
            write!(f, "application {}", app.unwrap_or("(no application id)"))?;
            details.push("service principal".into());
        } else {
            write!(f, "{}", self.user().unwrap_or("(no name)"))?;
            details.push("user".into());
        }
        if let Some(o) = &self.oid {
            details.push(format!("object id {o}"));
        }
        if let Some(t) = &self.tid {
            details.push(format!("tenant {t}"));
        }
        write!(f, " ({})", details.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", b(r#"{"alg":"RS256"}"#), b(claims), b("sig"))
    }

    #[test]
    fn a_user_is_named_by_upn() {
        let id = Identity::from_access_token(&token(
            r#"{"upn":"alice@example.com","unique_name":"alice@example.com","oid":"o-1","tid":"t-1","idtyp":"user","appid":"04b07795-8ddb-461a-bbee-02f9e1bf7b46"}"#,
        ))
        .unwrap();
        assert_eq!(
            id.to_string(),
            "alice@example.com (user, object id o-1, tenant t-1)"
        );
    }

    #[test]
    fn a_guest_without_upn_is_named_by_unique_name() {
        let id = Identity::from_access_token(&token(
            r#"{"unique_name":"live.com#bob@example.org","oid":"o-2","tid":"t-2"}"#,
        ))
        .unwrap();
        assert_eq!(
            id.to_string(),
            "live.com#bob@example.org (user, object id o-2, tenant t-2)"
        );
    }

    #[test]
    fn a_service_principal_and_a_managed_identity() {
        let sp = Identity::from_access_token(&token(
            r#"{"appid":"app-1","oid":"o-3","tid":"t-3","idtyp":"app"}"#,
        ))
        .unwrap();
        assert_eq!(
            sp.to_string(),
            "application app-1 (service principal, object id o-3, tenant t-3)"
        );
        let mi = Identity::from_access_token(&token(
            r#"{"appid":"app-2","oid":"o-4","tid":"t-4","idtyp":"app","xms_mirid":"/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer"}"#,
        ))
        .unwrap();
        assert!(
            mi.to_string()
                .starts_with("managed identity /subscriptions/s/resourcegroups/g/")
        );
        assert!(mi.to_string().contains("application app-2"));
    }

    #[test]
    fn opaque_or_malformed_tokens_have_no_identity() {
        for t in [
            "opaque-token",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &token("not json"),
            &token("{}"),
        ] {
            assert_eq!(Identity::from_access_token(t), None, "{t}");
        }
    }
}
