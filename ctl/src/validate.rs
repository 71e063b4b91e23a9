//! Validated values: everything that ends up in a URL path, an ssh command line or a remote script
//! is one of these types, built only through `FromStr`, so an invalid value is rejected while the
//! command line is parsed. The rules are Azure's naming rules (resource groups, Linux VMs), kept a
//! little stricter where a character would only ever cause trouble.

pub mod alerts;
pub mod storage;
pub mod telemetry;

use std::{fmt, path::Path, str::FromStr};

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {why}")]
pub struct InvalidValue {
    what: &'static str,
    value: String,
    why: &'static str,
}

fn invalid(what: &'static str, value: &str, why: &'static str) -> InvalidValue {
    InvalidValue {
        what,
        value: value.to_owned(),
        why,
    }
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits), as Azure's ids are.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_type!(
    /// A resource group name: 1-90 letters, digits, `_ - . ( )`, not ending with `.`.
    ResourceGroupName
);
string_type!(
    /// A VM name as Azure allows it for Linux VMs: 1-64 letters, digits, `- . _`, starting with a
    /// letter or digit, not ending with `.` or `-`.
    VmName
);
string_type!(
    /// An ssh login name (POSIX portable user name).
    SshUser
);
string_type!(
    /// An ssh destination host: a DNS name or an IPv4/IPv6 address.
    Host
);
string_type!(
    /// An absolute path of the agent binary on the VMs: `/` then letters, digits, `_ . / + -`.
    AgentPath
);
string_type!(
    /// A subscription id (a GUID).
    SubscriptionId
);

impl FromStr for ResourceGroupName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "resource group name";
        if s.is_empty() || s.len() > 90 {
            return Err(invalid(WHAT, s, "it must have 1 to 90 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.()".contains(c))
        {
            return Err(invalid(
                WHAT,
                s,
                "only letters, digits and _ - . ( ) are allowed",
            ));
        }
        if s.ends_with('.') {
            return Err(invalid(WHAT, s, "it must not end with a period"));
        }
        Ok(ResourceGroupName(s.to_owned()))
    }
}

impl FromStr for VmName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "VM name";
        if s.is_empty() || s.len() > 64 {
            return Err(invalid(WHAT, s, "it must have 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err(invalid(
                WHAT,
                s,
                "only letters, digits and - . _ are allowed",
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(invalid(WHAT, s, "it must start with a letter or a digit"));
        }
        if s.ends_with(['.', '-']) {
            return Err(invalid(WHAT, s, "it must not end with . or -"));
        }
        Ok(VmName(s.to_owned()))
    }
}

impl FromStr for SshUser {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
        if ok {
            Ok(SshUser(s.to_owned()))
        } else {
            Err(invalid(
                "ssh user",
                s,
                "use 1-32 lowercase letters, digits, _ - ., starting with a letter or _",
            ))
        }
    }
}

impl FromStr for Host {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Host(s.to_owned()));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok) {
            Ok(Host(s.to_owned()))
        } else {
            Err(invalid("host", s, "use a DNS name or an IP address"))
        }
    }
}

impl FromStr for AgentPath {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.starts_with('/')
            && s.len() <= 1024
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./+-".contains(c))
            && !Path::new(s)
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if ok {
            Ok(AgentPath(s.to_owned()))
        } else {
            Err(invalid(
                "agent path",
                s,
                "use an absolute path of letters, digits and _ . / + - (no ..)",
            ))
        }
    }
}

impl FromStr for SubscriptionId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_guid(s) {
            Ok(SubscriptionId(s.to_ascii_lowercase()))
        } else {
            Err(invalid(
                "subscription id",
                s,
                "expected a GUID like 00000000-0000-0000-0000-000000000000",
            ))
        }
    }
}

/// `--tag key=value`: only ever compared with the tags Azure returns, never sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// Tag name (compared case-insensitively, like Azure does).
    pub key: String,
    /// Tag value (compared exactly).
    pub value: String,
}

impl FromStr for TagFilter {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.len() <= 512 && v.len() <= 256 => Ok(TagFilter {
                key: k.to_owned(),
                value: v.to_owned(),
            }),
            _ => Err(invalid("tag", s, "use KEY=VALUE")),
        }
    }
}

impl TagFilter {
    /// Whether these tags match.
    pub fn matches(&self, tags: &std::collections::BTreeMap<String, String>) -> bool {
        tags.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(&self.key) && *v == self.value)
    }
}

/// `value` quoted for a POSIX shell (single quotes; a quote becomes `'\''`).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

// The values of `deploy` and `rollback`.

/// A canary profile name: 1-64 letters, digits, `_ . -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryProfile(String);

impl FromStr for CanaryProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err("a canary profile has 1 to 64 characters".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err("a canary profile has only letters, digits and _ . -".into());
        }
        Ok(CanaryProfile(s.to_owned()))
    }
}

impl fmt::Display for CanaryProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A git ref name (branch or tag) or a commit: letters, digits, `_ . / -`, no `..`, not starting
/// with `-` or `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef(String);

impl FromStr for GitRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 200
            && !s.starts_with(['-', '/', '.'])
            && !s.ends_with(['/', '.'])
            && !s.contains("..")
            && !s.contains("//")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
        if ok {
            Ok(GitRef(s.to_owned()))
        } else {
            Err(
                "a ref has only letters, digits and _ . / - (no .., not starting with - / .)"
                    .into(),
            )
        }
    }
}

impl GitRef {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A commit id: 7 to 40 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitId(String);

impl FromStr for CommitId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        if (7..=40).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(CommitId(s))
        } else {
            Err("a commit is 7 to 40 hex digits".into())
        }
    }
}

impl CommitId {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A git remote URL: `https://`, `ssh://`, `git://`, `file://` or an absolute path; no spaces,
/// quotes or shell characters, and never starting with `-` (git would read it as an option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl(String);

impl FromStr for RepoUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let scheme = ["https://", "http://", "ssh://", "git://", "file://", "/"]
            .iter()
            .any(|p| s.starts_with(p));
        let chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/:@~%+=".contains(c));
        if scheme && chars && s.len() <= 500 && !s.contains("::") {
            Ok(RepoUrl(s.to_owned()))
        } else {
            Err("use an https://, ssh://, git://, file:// URL or an absolute path, without spaces or quotes".into())
        }
    }
}

impl RepoUrl {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL the VM downloads the agent binary from (`http`, `https` or `file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUrl(String);

impl FromStr for AgentUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let scheme = ["https://", "http://", "file:///"]
            .iter()
            .any(|p| s.starts_with(p));
        let chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/:@~%+=?&".contains(c));
        if scheme && chars && s.len() <= 1000 {
            Ok(AgentUrl(s.to_owned()))
        } else {
            Err("use an http(s):// or file:/// URL without spaces or quotes".into())
        }
    }
}

impl AgentUrl {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(String);

impl FromStr for Sha256Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256Hex(s))
        } else {
            Err("a SHA-256 is 64 hex digits".into())
        }
    }
}

impl Sha256Hex {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "x$(touch /tmp/pwned)";

    #[test]
    fn azure_names() {
        for ok in ["APPSERVRG", "rg_1-a.(b)", "a"] {
            ok.parse::<ResourceGroupName>().unwrap();
        }
        for bad in ["", "rg.", "rg name", HOSTILE, "rg;id", &"a".repeat(91)] {
            assert!(bad.parse::<ResourceGroupName>().is_err(), "{bad}");
        }
        for ok in ["DevNode01", "vm-1.a_b", "9"] {
            ok.parse::<VmName>().unwrap();
        }
        for bad in [
            "",
            "-vm",
            "_vm",
            "vm-",
            "vm.",
            "vm name",
            HOSTILE,
            "vm`id`",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<VmName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_values() {
        "azureuser".parse::<SshUser>().unwrap();
        "root".parse::<SshUser>().unwrap();
        for bad in ["Root", "-oProxyCommand=id", "a b", "a;b", ""] {
            assert!(bad.parse::<SshUser>().is_err(), "{bad}");
        }
        for ok in ["10.200.0.11", "::1", "vm1.example.com"] {
            ok.parse::<Host>().unwrap();
        }
        for bad in ["-oProxyCommand=id", "a b", "a..b", HOSTILE, ""] {
            assert!(bad.parse::<Host>().is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_paths() {
        "/usr/local/bin/cryptobot-agent"
            .parse::<AgentPath>()
            .unwrap();
        for bad in [
            "cryptobot-agent",
            "/x;touch /tmp/pwned",
            "/a/../b",
            "/a b",
            "/$(id)",
        ] {
            assert!(bad.parse::<AgentPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_ids() {
        assert_eq!(
            "AAAAAAAA-0000-0000-0000-000000000001"
                .parse::<SubscriptionId>()
                .unwrap()
                .as_str(),
            "aaaaaaaa-0000-0000-0000-000000000001"
        );
        assert!("sub".parse::<SubscriptionId>().is_err());
    }

    #[test]
    fn tags_match_case_insensitive_keys() {
        let t: TagFilter = "Role=bot".parse().unwrap();
        let tags = [("role".to_owned(), "bot".to_owned())]
            .into_iter()
            .collect();
        assert!(t.matches(&tags));
        let hostile: TagFilter = format!("role={HOSTILE}").parse().unwrap();
        assert!(!hostile.matches(&tags));
        assert!("novalue".parse::<TagFilter>().is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(HOSTILE), "'x$(touch /tmp/pwned)'");
    }
}
