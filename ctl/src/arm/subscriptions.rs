//! The subscription itself (`GET /subscriptions/{id}`): its display name and state, so the operator
//! sees by name which subscription a deploy is about to change.

use std::time::Instant;

use serde::Deserialize;

use super::{client::ArmClient, errors::ArmError};

/// Resources api-version for the subscription.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

/// A subscription (only the fields cryptoctl prints).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The id.
    pub subscription_id: String,
    /// The name shown in the portal.
    #[serde(default)]
    pub display_name: String,
    /// `Enabled`, `Warned`, `PastDue`, `Disabled`, `Deleted`.
    #[serde(default)]
    pub state: String,
    /// The tenant it belongs to.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl ArmClient {
    /// The subscription `id`.
    pub async fn subscription(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Subscription, ArmError> {
        let url = self.url(&["subscriptions", id], SUBSCRIPTIONS_API_VERSION);
        self.get_json(&url, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_azure_shape() {
        let s: Subscription = serde_json::from_str(
            r#"{"id":"/subscriptions/x","authorizationSource":"RoleBased","managedByTenants":[],
                "subscriptionId":"x","tenantId":"t","displayName":"Prod","state":"Enabled",
                "subscriptionPolicies":{"spendingLimit":"Off"}}"#,
        )
        .unwrap();
        assert_eq!(s.display_name, "Prod");
        assert_eq!(s.state, "Enabled");
        assert_eq!(s.tenant_id.as_deref(), Some("t"));
    }
}
