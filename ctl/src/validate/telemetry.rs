//! The validated inputs of `health --source telemetry` and of the Resource Graph inventory: the
//! Application Insights application id and the Log Analytics workspace id (GUIDs, as the query
//! APIs name them), management group names, and the query API endpoint (https only: it receives a
//! token). Each is checked while the command line is parsed.

use std::{fmt, str::FromStr};

use super::{InvalidValue, invalid, is_guid};

macro_rules! guid_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $why:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The GUID, lower-case.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if is_guid(s) {
                    Ok($name(s.to_ascii_lowercase()))
                } else {
                    Err(invalid($what, s, $why))
                }
            }
        }
    };
}

guid_type!(
    /// `--app-insights`: the Application ID of an Application Insights resource (its API Access
    /// blade), which the query API takes in its path.
    AppId,
    "Application Insights application id",
    "expected the Application ID (a GUID, from the resource's API Access blade), not its resource id"
);
guid_type!(
    /// `--workspace`: the Workspace ID of a Log Analytics workspace (its Properties blade).
    WorkspaceId,
    "Log Analytics workspace id",
    "expected the Workspace ID (a GUID, from the workspace's Properties blade), not its resource id"
);

/// A management group name (its id): 1-90 letters, digits, `- _ ( ) .`, not ending with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManagementGroupName(String);

impl ManagementGroupName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ManagementGroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ManagementGroupName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=90).contains(&s.len())
            && !s.ends_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_().".contains(c));
        if ok {
            Ok(ManagementGroupName(s.to_owned()))
        } else {
            Err(invalid(
                "management group",
                s,
                "use 1-90 letters, digits and - _ ( ) . (not ending with .)",
            ))
        }
    }
}

/// A query API base URL (`https://host[:port]`, no query or fragment): the token for the query
/// API goes there, so plain http is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEndpoint(String);

impl QueryEndpoint {
    /// The URL as given, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for QueryEndpoint {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = reqwest::Url::parse(s).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none()
        });
        if ok {
            Ok(QueryEndpoint(s.trim_end_matches('/').to_owned()))
        } else {
            Err(invalid(
                "query endpoint",
                s,
                "use a base https URL like https://api.applicationinsights.io",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_guids_and_resource_ids_are_explained() {
        let id: AppId = "34ADFA4F-CEDF-4DC0-BA29-B6D1A69AB345".parse().unwrap();
        assert_eq!(id.as_str(), "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345");
        let e = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/ai"
            .parse::<AppId>()
            .unwrap_err();
        assert!(e.to_string().contains("not its resource id"), "{e}");
        assert!(
            "63613592-b6f7-4c3d-a390-22ba13102111"
                .parse::<WorkspaceId>()
                .is_ok()
        );
        assert!("63613592".parse::<WorkspaceId>().is_err());
    }

    #[test]
    fn management_groups_and_endpoints() {
        assert!("Bots-Prod_(eu).1".parse::<ManagementGroupName>().is_ok());
        for bad in ["", "x.", "a'b", "a b", &"m".repeat(91)] {
            assert!(bad.parse::<ManagementGroupName>().is_err(), "{bad:?}");
        }
        let e: QueryEndpoint = "https://127.0.0.1:8443/".parse().unwrap();
        assert_eq!(e.as_str(), "https://127.0.0.1:8443");
        for bad in [
            "http://api.loganalytics.io",
            "https://api.loganalytics.io/?x=1",
            "https://user:pw@api.loganalytics.io",
            "api.loganalytics.io",
        ] {
            assert!(bad.parse::<QueryEndpoint>().is_err(), "{bad}");
        }
    }
}
