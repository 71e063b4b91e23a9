//! Network lookups for ssh: a VM's primary NIC, its primary IP configuration and the public IP
//! address attached to it (else the private address).

use std::time::Instant;

use serde::Deserialize;

use super::{
    client::{ArmClient, NETWORK_API_VERSION},
    errors::ArmError,
    vms::VirtualMachine,
};

/// A network interface (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkInterface {
    /// Properties.
    #[serde(default)]
    pub properties: NicProperties,
}

/// `properties` of a NIC.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicProperties {
    /// IP configurations.
    #[serde(default)]
    pub ip_configurations: Vec<IpConfiguration>,
}

/// An IP configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpConfiguration {
    /// Properties.
    #[serde(default)]
    pub properties: IpConfigurationProperties,
}

/// `properties` of an IP configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    /// Private address.
    #[serde(rename = "privateIPAddress", default)]
    pub private_ip_address: Option<String>,
    /// Reference to a public IP resource.
    #[serde(rename = "publicIPAddress", default)]
    pub public_ip_address: Option<ResourceRef>,
    /// The primary configuration.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// A reference to another resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceRef {
    /// Its id.
    pub id: String,
}

/// A public IP address resource.
#[derive(Debug, Clone, Deserialize)]
pub struct PublicIpAddress {
    /// Properties.
    #[serde(default)]
    pub properties: PublicIpProperties,
}

/// `properties` of a public IP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpProperties {
    /// The address (absent while unallocated).
    #[serde(default)]
    pub ip_address: Option<String>,
}

impl NetworkInterface {
    /// The primary IP configuration (else the first).
    pub fn primary_ip_configuration(&self) -> Option<&IpConfigurationProperties> {
        let c = &self.properties.ip_configurations;
        c.iter()
            .find(|c| c.properties.primary == Some(true))
            .or_else(|| c.first())
            .map(|c| &c.properties)
    }
}

impl ArmClient {
    /// The address to ssh to: the public IP of the primary NIC's primary configuration, else its
    /// private IP.
    pub async fn ssh_address(
        &self,
        vm: &VirtualMachine,
        deadline: Instant,
    ) -> Result<String, ArmError> {
        let nic_id = vm.primary_nic().ok_or_else(|| ArmError::Protocol {
            url: vm.id.clone(),
            message: "the VM has no network interface".into(),
        })?;
        let nic: NetworkInterface = self
            .get_json(&self.resource_url(nic_id, NETWORK_API_VERSION), deadline)
            .await?;
        let config = nic
            .primary_ip_configuration()
            .ok_or_else(|| ArmError::Protocol {
                url: nic_id.to_owned(),
                message: "the network interface has no IP configuration".into(),
            })?;
        if let Some(public) = &config.public_ip_address {
            let ip: PublicIpAddress = self
                .get_json(
                    &self.resource_url(&public.id, NETWORK_API_VERSION),
                    deadline,
                )
                .await?;
            if let Some(a) = ip.properties.ip_address.filter(|a| !a.is_empty()) {
                return Ok(a);
            }
        }
        config
            .private_ip_address
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ArmError::Protocol {
                url: nic_id.to_owned(),
                message: "the network interface has no IP address".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_configuration() {
        let nic: NetworkInterface = serde_json::from_str(
            r#"{"properties":{"ipConfigurations":[
                {"properties":{"privateIPAddress":"10.0.0.5","primary":false}},
                {"properties":{"privateIPAddress":"10.0.0.4","primary":true,
                  "publicIPAddress":{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/publicIPAddresses/ip"}}}]}}"#,
        )
        .unwrap();
        let c = nic.primary_ip_configuration().unwrap();
        assert_eq!(c.private_ip_address.as_deref(), Some("10.0.0.4"));
        assert!(c.public_ip_address.as_ref().unwrap().id.ends_with("/ip"));
    }
}
