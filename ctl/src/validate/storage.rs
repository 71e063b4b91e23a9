//! The validated `--agent-storage ACCOUNT/CONTAINER` of `cryptoctl deploy`: a storage account name
//! (3-24 lowercase letters and digits) and a container name as Azure accepts them (3-63 characters,
//! lowercase letters, digits and single hyphens, starting and ending with a letter or digit), so a
//! name the service would refuse with `InvalidResourceName` fails before anything is contacted.

use std::{fmt, str::FromStr};

/// A blob container in a storage account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageTarget {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
}

fn account_ok(a: &str) -> Result<(), String> {
    if !(3..=24).contains(&a.len()) {
        return Err(format!(
            "storage account name {a:?}: 3 to 24 characters (it has {})",
            a.len()
        ));
    }
    if !a
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "storage account name {a:?}: only lowercase letters and digits"
        ));
    }
    Ok(())
}

fn container_ok(c: &str) -> Result<(), String> {
    let why = if !(3..=63).contains(&c.len()) {
        Some(format!("3 to 63 characters (it has {})", c.len()))
    } else if !c
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        Some("only lowercase letters, digits and hyphens".to_owned())
    } else if c.starts_with('-') || c.ends_with('-') {
        Some("it must start and end with a letter or digit".to_owned())
    } else if c.contains("--") {
        Some("no two hyphens in a row".to_owned())
    } else {
        None
    };
    match why {
        Some(w) => Err(format!(
            "container name {c:?} would be refused by Azure (InvalidResourceName): {w}"
        )),
        None => Ok(()),
    }
}

impl FromStr for StorageTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((account, container)) = s.split_once('/') else {
            return Err("use ACCOUNT/CONTAINER (a storage account and a blob container)".into());
        };
        account_ok(account)?;
        container_ok(container)?;
        Ok(StorageTarget {
            account: account.to_owned(),
            container: container.to_owned(),
        })
    }
}

impl fmt::Display for StorageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_azure_accepts_and_refuses() {
        let t: StorageTarget = "cryptobotdeploy/agents-1".parse().unwrap();
        assert_eq!(
            (t.account.as_str(), t.container.as_str()),
            ("cryptobotdeploy", "agents-1")
        );
        assert_eq!(t.to_string(), "cryptobotdeploy/agents-1");
        for bad in [
            "acct",
            "ab/agents",
            "Acct1/agents",
            "acct1/Agents",
            "acct1/ag",
            "acct1/-agents",
            "acct1/agents-",
            "acct1/a--b",
            "acct1/a_b",
            "acct1/a/b",
            &format!("acct1/{}", "a".repeat(64)),
            &format!("{}/agents", "a".repeat(25)),
        ] {
            assert!(bad.parse::<StorageTarget>().is_err(), "{bad:?}");
        }
        let e = "acct1/Agents".parse::<StorageTarget>().unwrap_err();
        assert!(e.contains("InvalidResourceName"), "{e}");
    }
}
