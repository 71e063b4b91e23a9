//! Virtual machines: list (per resource group and subscription-wide, paged), get and instance view.
//! The power state is the status whose code starts with `PowerState/` (never a fixed index); the
//! guest agent is ready when `vmAgent.statuses` says `Ready`.

use std::{collections::BTreeMap, time::Instant};

use serde::Deserialize;

use super::{
    client::{ArmClient, COMPUTE_API_VERSION},
    errors::ArmError,
};

/// One VM as `list` and `get` return it (only the fields cryptoctl uses).
#[derive(Debug, Clone, Deserialize)]
pub struct VirtualMachine {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Azure region.
    #[serde(default)]
    pub location: String,
    /// Tags.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// Properties.
    #[serde(default)]
    pub properties: VmProperties,
}

/// `properties` of a VM.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProperties {
    /// Size.
    #[serde(default)]
    pub hardware_profile: Option<HardwareProfile>,
    /// NICs.
    #[serde(default)]
    pub network_profile: Option<NetworkProfile>,
    /// OS disk (for the OS type).
    #[serde(default)]
    pub storage_profile: Option<StorageProfile>,
    /// Only with `$expand=instanceView`.
    #[serde(default)]
    pub instance_view: Option<InstanceView>,
}

/// `hardwareProfile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    /// e.g. `Standard_B2s`.
    #[serde(default)]
    pub vm_size: String,
}

/// `networkProfile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// NIC references.
    #[serde(default)]
    pub network_interfaces: Vec<NicReference>,
}

/// A NIC reference.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NicReference {
    /// NIC resource id.
    pub id: String,
    /// `properties.primary`.
    #[serde(default)]
    pub properties: Option<NicReferenceProperties>,
}

/// `properties` of a NIC reference.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NicReferenceProperties {
    /// The primary NIC.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// `storageProfile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    /// OS disk.
    #[serde(default)]
    pub os_disk: Option<OsDisk>,
}

/// `osDisk`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    /// `Linux` or `Windows`.
    #[serde(default)]
    pub os_type: Option<String>,
}

/// A VM's instance view.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Provisioning and power statuses (in no guaranteed order).
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
    /// The guest agent.
    #[serde(default)]
    pub vm_agent: Option<VmAgent>,
}

/// `vmAgent` of an instance view.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmAgent {
    /// Version.
    #[serde(default)]
    pub vm_agent_version: Option<String>,
    /// Its statuses.
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

/// `InstanceViewStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewStatus {
    /// e.g. `PowerState/running`.
    #[serde(default)]
    pub code: String,
    /// `Info`, `Warning` or `Error`.
    #[serde(default)]
    pub level: Option<String>,
    /// e.g. `VM running`.
    #[serde(default)]
    pub display_status: Option<String>,
    /// Detail.
    #[serde(default)]
    pub message: Option<String>,
}

/// A VM's power state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerState {
    /// After `PowerState/`: `running`, `stopped`, `deallocated`, `starting`, ...
    pub code: String,
    /// e.g. `VM deallocated`.
    pub display: String,
}

impl PowerState {
    /// Running (the only state in which the worker can run).
    pub fn is_running(&self) -> bool {
        self.code.eq_ignore_ascii_case("running")
    }
}

/// Whether the guest agent (which runs run-command scripts) is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestAgent {
    /// `Ready`.
    Ready,
    /// Not ready, with what Azure says.
    NotReady(String),
    /// The instance view has no guest agent information.
    Unknown,
}

impl InstanceView {
    /// The power state, from the status whose code starts with `PowerState/`.
    pub fn power_state(&self) -> Option<PowerState> {
        self.statuses.iter().find_map(|s| {
            let code = s.code.strip_prefix("PowerState/")?;
            Some(PowerState {
                code: code.to_owned(),
                display: s
                    .display_status
                    .clone()
                    .unwrap_or_else(|| format!("VM {code}")),
            })
        })
    }

    /// The guest agent's readiness.
    pub fn guest_agent(&self) -> GuestAgent {
        let Some(agent) = &self.vm_agent else {
            return GuestAgent::Unknown;
        };
        match agent.statuses.first() {
            None => GuestAgent::Unknown,
            Some(s) if s.display_status.as_deref() == Some("Ready") => GuestAgent::Ready,
            Some(s) => GuestAgent::NotReady(
                [s.display_status.as_deref(), s.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
            ),
        }
    }
}

impl VirtualMachine {
    /// The resource group, from the id (`.../resourceGroups/{rg}/...`).
    pub fn resource_group(&self) -> String {
        resource_group_of(&self.id).unwrap_or_default()
    }

    /// The size, or an empty string.
    pub fn size(&self) -> &str {
        self.properties
            .hardware_profile
            .as_ref()
            .map_or("", |h| h.vm_size.as_str())
    }

    /// The tags (empty when none).
    pub fn tag_map(&self) -> BTreeMap<String, String> {
        self.tags.clone().unwrap_or_default()
    }

    /// The primary NIC's id (else the first).
    pub fn primary_nic(&self) -> Option<&str> {
        let nics = &self.properties.network_profile.as_ref()?.network_interfaces;
        nics.iter()
            .find(|n| n.properties.as_ref().and_then(|p| p.primary) == Some(true))
            .or_else(|| nics.first())
            .map(|n| n.id.as_str())
    }

    /// The OS type, when known.
    pub fn os_type(&self) -> Option<&str> {
        self.properties
            .storage_profile
            .as_ref()?
            .os_disk
            .as_ref()?
            .os_type
            .as_deref()
    }
}

/// The resource group named in a resource id.
pub fn resource_group_of(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("resourceGroups") {
            return parts.next().map(str::to_owned);
        }
    }
    None
}

impl ArmClient {
    /// Every VM of a resource group.
    pub async fn list_vms(
        &self,
        subscription: &str,
        resource_group: &str,
        deadline: Instant,
    ) -> Result<Vec<VirtualMachine>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "resourceGroups",
                resource_group,
                "providers",
                "Microsoft.Compute",
                "virtualMachines",
            ],
            COMPUTE_API_VERSION,
        );
        self.list(url, deadline).await
    }

    /// Every VM of the subscription.
    pub async fn list_all_vms(
        &self,
        subscription: &str,
        deadline: Instant,
    ) -> Result<Vec<VirtualMachine>, ArmError> {
        let url = self.url(
            &[
                "subscriptions",
                subscription,
                "providers",
                "Microsoft.Compute",
                "virtualMachines",
            ],
            COMPUTE_API_VERSION,
        );
        self.list(url, deadline).await
    }

    /// A VM's instance view.
    pub async fn instance_view(
        &self,
        vm_id: &str,
        deadline: Instant,
    ) -> Result<InstanceView, ArmError> {
        let url = self.resource_url(&format!("{vm_id}/instanceView"), COMPUTE_API_VERSION);
        self.get_json(&url, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> InstanceView {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn power_state_by_prefix_not_index() {
        let v = view(
            r#"{"statuses":[{"code":"PowerState/deallocated","level":"Info","displayStatus":"VM deallocated"},
                {"code":"ProvisioningState/succeeded","level":"Info","displayStatus":"Provisioning succeeded"}]}"#,
        );
        let p = v.power_state().unwrap();
        assert_eq!(p.code, "deallocated");
        assert_eq!(p.display, "VM deallocated");
        assert!(!p.is_running());
        assert_eq!(view(r#"{"statuses":[]}"#).power_state(), None);
    }

    #[test]
    fn guest_agent_readiness() {
        let ready = view(
            r#"{"vmAgent":{"vmAgentVersion":"2.2.48.1","statuses":[{"code":"ProvisioningState/succeeded","level":"Info","displayStatus":"Ready","message":"Guest Agent is running"}]}}"#,
        );
        assert_eq!(ready.guest_agent(), GuestAgent::Ready);
        let not = view(
            r#"{"vmAgent":{"statuses":[{"code":"ProvisioningState/Unavailable","level":"Warning","displayStatus":"Not Ready","message":"VM Agent is unresponsive."}]}}"#,
        );
        assert_eq!(
            not.guest_agent(),
            GuestAgent::NotReady("Not Ready: VM Agent is unresponsive.".into())
        );
        assert_eq!(view("{}").guest_agent(), GuestAgent::Unknown);
    }

    #[test]
    fn vm_fields() {
        let vm: VirtualMachine = serde_json::from_str(
            r#"{"id":"/subscriptions/s/resourceGroups/APPSERVRG/providers/Microsoft.Compute/virtualMachines/DevNode01",
                "name":"DevNode01","location":"westeurope","tags":{"role":"bot"},
                "properties":{"hardwareProfile":{"vmSize":"Standard_B2s"},
                  "storageProfile":{"osDisk":{"osType":"Linux"}},
                  "networkProfile":{"networkInterfaces":[{"id":"/n1"},{"id":"/n2","properties":{"primary":true}}]}}}"#,
        )
        .unwrap();
        assert_eq!(vm.resource_group(), "APPSERVRG");
        assert_eq!(vm.size(), "Standard_B2s");
        assert_eq!(vm.primary_nic(), Some("/n2"));
        assert_eq!(vm.os_type(), Some("Linux"));
    }
}
