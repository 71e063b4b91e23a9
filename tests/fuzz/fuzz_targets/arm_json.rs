//! Azure Resource Manager JSON: a page of the VM list, an instance view and an error body, each
//! deserialised into cryptoctl's types and then read the way the commands read them.
#![no_main]

use cryptoctl::arm::{ArmError, InstanceView, VirtualMachine, client::ListPage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<ListPage<VirtualMachine>>(data) {
        for vm in &page.value {
            let _ = vm.resource_group();
            let _ = vm.size();
            let _ = vm.tag_map();
            let _ = vm.primary_nic();
            let _ = vm.os_type();
        }
    }
    if let Ok(view) = serde_json::from_slice::<InstanceView>(data) {
        let _ = view.power_state();
        let _ = view.guest_agent();
    }
    let _ = ArmError::from_response(400, data).to_string();
});
