//! The api-versions the emulator's resource providers answer to, and ARM's answer to any other:
//! `400` with `InvalidApiVersionParameter` for a value that is not an api-version at all (or for
//! Resource Manager's own subscription routes), `NoRegisteredProviderFound` for a well-formed
//! version the provider does not have. The lists are the stable versions of the REST
//! specifications; no preview version is accepted, so the emulator is never more lenient than Azure.

/// `Microsoft.Compute` (virtual machines, instance views, run-command and its operations).
const COMPUTE: &[&str] = &[
    "2015-06-15",
    "2016-03-30",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
];
/// `Microsoft.Network` (network interfaces, public IP addresses).
const NETWORK: &[&str] = &[
    "2022-07-01",
    "2022-09-01",
    "2022-11-01",
    "2023-02-01",
    "2023-04-01",
    "2023-05-01",
    "2023-06-01",
    "2023-09-01",
    "2023-11-01",
    "2024-01-01",
    "2024-03-01",
    "2024-05-01",
    "2024-07-01",
    "2024-10-01",
];
/// Resource Manager's own routes (`/subscriptions/{id}`, resource groups).
const RESOURCES: &[&str] = &[
    "2016-06-01",
    "2019-06-01",
    "2019-11-01",
    "2020-01-01",
    "2021-01-01",
    "2022-12-01",
];

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
fn well_formed(version: &str) -> bool {
    let date = version.strip_suffix("-preview").unwrap_or(version);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// ARM's `(code, message)` for `version` on `path`, or `None` when the provider has it.
pub fn refusal(path: &str, version: &str) -> Option<(&'static str, String)> {
    let (provider, resource_type, known) =
        if let Some(rest) = after(path, "/providers/Microsoft.Compute/") {
            ("Microsoft.Compute", first_segment(rest), COMPUTE)
        } else if let Some(rest) = after(path, "/providers/Microsoft.Network/") {
            ("Microsoft.Network", first_segment(rest), NETWORK)
        } else {
            ("", "", RESOURCES)
        };
    if known.contains(&version) {
        return None;
    }
    let list = known.join(", ");
    if provider.is_empty() || !well_formed(version) {
        return Some((
            "InvalidApiVersionParameter",
            format!("The api-version '{version}' is invalid. The supported versions are '{list}'."),
        ));
    }
    Some((
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location 'westeurope' and API version \
             '{version}' for type '{resource_type}'. The supported api-versions are '{list}'. The \
             supported locations are 'eastus, westus, westeurope, northeurope'."
        ),
    ))
}

fn after<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    path.find(marker).map(|i| &path[i + marker.len()..])
}

fn first_segment(rest: &str) -> &str {
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_versions_pass_and_others_get_arms_codes() {
        let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v";
        assert!(refusal(vm, "2024-11-01").is_none());
        assert_eq!(
            refusal(vm, "2099-01-01").unwrap().0,
            "NoRegisteredProviderFound"
        );
        assert!(
            refusal(vm, "2099-01-01")
                .unwrap()
                .1
                .contains("for type 'virtualMachines'")
        );
        assert_eq!(
            refusal(vm, "2024-11-01-preview").unwrap().0,
            "NoRegisteredProviderFound"
        );
        assert_eq!(
            refusal(vm, "latest").unwrap().0,
            "InvalidApiVersionParameter"
        );
        assert!(refusal("/subscriptions/s", "2022-12-01").is_none());
        assert_eq!(
            refusal("/subscriptions/s", "2024-11-01").unwrap().0,
            "InvalidApiVersionParameter"
        );
        let nic =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n";
        assert!(refusal(nic, "2024-05-01").is_none());
        assert!(refusal(nic, "2024-11-01").is_some());
    }
}
