//! The validated inputs of `cryptoctl alerts`: the resource the rules query (an Application
//! Insights component or a Log Analytics workspace), the receivers (e-mail addresses, webhook URLs,
//! Logic Apps), the name prefix and the region; and the redaction of receiver URLs for printing.
//! Everything is checked while the command line is parsed, so a bad value fails before any call.

use std::{fmt, str::FromStr};

use reqwest::Url;

use crate::validate::{ResourceGroupName, SubscriptionId};

/// A rejected value: the message names the option and says why (never echoing a URL, which may
/// carry a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, InputError> {
    Err(InputError(message.into()))
}

/// What the rules query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// `Microsoft.Insights/components` (classic or workspace-based Application Insights).
    AppInsights,
    /// `Microsoft.OperationalInsights/workspaces` (the workspace behind a workspace-based
    /// Application Insights resource).
    Workspace,
}

/// The resource id of an Application Insights component or a Log Analytics workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeId {
    /// The id as given.
    pub id: String,
    /// Its subscription.
    pub subscription: SubscriptionId,
    /// Its resource group.
    pub resource_group: ResourceGroupName,
    /// Its name.
    pub name: String,
    /// Which of the two it is.
    pub kind: ScopeKind,
}

impl ScopeId {
    /// Parses `text`, which must be a resource id of `expected`'s type.
    pub fn parse(text: &str, expected: ScopeKind) -> Result<ScopeId, InputError> {
        const SHAPES: &str = "expected /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Insights/components/NAME \
             or /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.OperationalInsights/workspaces/NAME";
        let segs: Vec<&str> = text.trim_end_matches('/').split('/').collect();
        let shaped = segs.len() == 9
            && segs[0].is_empty()
            && segs[1].eq_ignore_ascii_case("subscriptions")
            && segs[3].eq_ignore_ascii_case("resourceGroups")
            && segs[5].eq_ignore_ascii_case("providers");
        if !shaped {
            return err(format!("{text:?} is not a resource id ({SHAPES})"));
        }
        let kind = match (
            segs[6].to_ascii_lowercase().as_str(),
            segs[7].to_ascii_lowercase().as_str(),
        ) {
            ("microsoft.insights", "components") => ScopeKind::AppInsights,
            ("microsoft.operationalinsights", "workspaces") => ScopeKind::Workspace,
            (p, t) => {
                return err(format!(
                    "{text:?} is a {p}/{t} resource, not an Application Insights component or a \
                     Log Analytics workspace ({SHAPES})"
                ));
            }
        };
        if kind != expected {
            return err(match kind {
                ScopeKind::Workspace => {
                    format!("{text:?} is a Log Analytics workspace: give it with --workspace")
                }
                ScopeKind::AppInsights => format!(
                    "{text:?} is an Application Insights component: give it with --app-insights"
                ),
            });
        }
        let subscription: SubscriptionId =
            segs[2].parse().map_err(|e| InputError(format!("{e}")))?;
        let resource_group: ResourceGroupName =
            segs[4].parse().map_err(|e| InputError(format!("{e}")))?;
        let name = segs[8];
        let name_ok = !name.is_empty()
            && name.len() <= 260
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
        if !name_ok {
            return err(format!("{name:?} is not a valid resource name in {text:?}"));
        }
        Ok(ScopeId {
            id: text.trim_end_matches('/').to_owned(),
            subscription,
            resource_group,
            name: name.to_owned(),
            kind,
        })
    }
}

/// `--app-insights`.
pub fn parse_app_insights(text: &str) -> Result<ScopeId, InputError> {
    ScopeId::parse(text, ScopeKind::AppInsights)
}

/// `--workspace`.
pub fn parse_workspace(text: &str) -> Result<ScopeId, InputError> {
    ScopeId::parse(text, ScopeKind::Workspace)
}

/// An e-mail address (`local@domain.tld`, ASCII, no spaces or quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EmailAddress {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            err(format!(
                "{s:?} is not an e-mail address (like ops@example.com)"
            ))
        };
        let Some((local, domain)) = s.split_once('@') else {
            return bad();
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && domain.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if local_ok && domain_ok && s.len() <= 254 {
            Ok(EmailAddress(s.to_owned()))
        } else {
            bad()
        }
    }
}

/// An http(s) URL with a host, kept exactly as given (that is what Azure stores).
fn receiver_url(s: &str, what: &str, https_only: bool) -> Result<Url, InputError> {
    let scheme_hint = if https_only { "https" } else { "http(s)" };
    let url = Url::parse(s).map_err(|_| InputError(format!("{what}: not an {scheme_hint} URL")))?;
    let scheme_ok = url.scheme() == "https" || (!https_only && url.scheme() == "http");
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) {
        return err(format!("{what}: not an {scheme_hint} URL with a host"));
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(format!("{what}: the URL is too long or has spaces"));
    }
    Ok(url)
}

/// A webhook receiver's URL (http or https; credentials in it are kept, never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WebhookUrl {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        receiver_url(s, "--webhook", false)?;
        Ok(WebhookUrl(s.to_owned()))
    }
}

/// `RESOURCE_ID=CALLBACK_URL` of a Logic App (`Microsoft.Logic/workflows`) and its trigger's
/// https callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicAppReceiver {
    /// The workflow's resource id.
    pub resource_id: String,
    /// The trigger's callback URL (its `sig` is a secret).
    pub callback_url: String,
}

impl FromStr for LogicAppReceiver {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((id, url)) = s.split_once('=') else {
            return err("--logic-app: expected RESOURCE_ID=CALLBACK_URL");
        };
        let segs: Vec<&str> = id.split('/').collect();
        let ok = segs.len() == 9
            && segs[0].is_empty()
            && segs[1].eq_ignore_ascii_case("subscriptions")
            && segs[2].parse::<SubscriptionId>().is_ok()
            && segs[3].eq_ignore_ascii_case("resourceGroups")
            && segs[4].parse::<ResourceGroupName>().is_ok()
            && segs[5].eq_ignore_ascii_case("providers")
            && segs[6].eq_ignore_ascii_case("Microsoft.Logic")
            && segs[7].eq_ignore_ascii_case("workflows")
            && !segs[8].is_empty()
            && segs[8]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
        if !ok {
            return err(format!(
                "--logic-app: {id:?} is not a Logic App resource id \
                 (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Logic/workflows/NAME)"
            ));
        }
        receiver_url(url, "--logic-app callback", true)?;
        Ok(LogicAppReceiver {
            resource_id: id.to_owned(),
            callback_url: url.to_owned(),
        })
    }
}

/// The prefix of every resource name: a letter, then letters, digits, `-`, `_`, `.`; at most 40.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePrefix(String);

impl NamePrefix {
    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The action group's short name (at most 12 characters, shown in SMS and e-mail): the prefix
    /// without trailing separators, cut to 12.
    pub fn short_name(&self) -> String {
        let base = self.0.trim_end_matches(['-', '_', '.']);
        base.chars().take(12).collect()
    }
}

impl FromStr for NamePrefix {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Ok(NamePrefix(s.to_owned()))
        } else {
            err(format!(
                "--name-prefix {s:?}: use 1-40 letters, digits, - _ ., starting with a letter"
            ))
        }
    }
}

impl fmt::Display for NamePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Azure region name as Resource Manager spells it (`westeurope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name: String = s
            .chars()
            .filter(|c| *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        if !name.is_empty() && name.len() <= 40 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Region(name))
        } else {
            err(format!(
                "--location {s:?} is not an Azure region name (like westeurope)"
            ))
        }
    }
}

/// Checks a generated resource name against what Azure accepts for Monitor resources: 1-260
/// characters, none of `< > * % { } & : \ ? / # |` or control characters, not ending with `.` or
/// a space.
pub fn check_resource_name(name: &str) -> Result<(), InputError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 260
        && !name
            .chars()
            .any(|c| c.is_control() || "<>*%{}&:\\?/#|".contains(c))
        && !name.ends_with(['.', ' ']);
    if ok {
        Ok(())
    } else {
        err(format!(
            "{name:?} is not a name Azure accepts for an alert rule or action group"
        ))
    }
}

/// `url` for printing: user and password become `***`, every query value but `api-version`
/// becomes `***` (a Logic App's `sig`, tokens, keys).
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return "***".to_owned();
    };
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "api-version" {
                    v.into_owned()
                } else {
                    "***".to_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A copy of an ARM body with every receiver URL (`serviceUri`, `callbackUrl`) redacted.
pub fn redact_body(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = match (k.as_str(), x) {
                        ("serviceUri" | "callbackUrl", Value::String(s)) => {
                            Value::String(redact_url(s))
                        }
                        _ => redact_body(x),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact_body).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-4000-8000-000000000001";

    #[test]
    fn scopes() {
        let ai = format!(
            "/subscriptions/{SUB}/resourceGroups/ops/providers/Microsoft.Insights/components/bots"
        );
        let s = parse_app_insights(&ai).unwrap();
        assert_eq!(s.resource_group.as_str(), "ops");
        assert_eq!(s.name, "bots");
        let ws = format!(
            "/subscriptions/{SUB}/resourcegroups/ops/providers/microsoft.operationalinsights/workspaces/logs"
        );
        assert_eq!(parse_workspace(&ws).unwrap().kind, ScopeKind::Workspace);
        assert!(
            parse_app_insights(&ws)
                .unwrap_err()
                .0
                .contains("--workspace")
        );
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/ops/providers/Microsoft.Compute/virtualMachines/v"
        );
        assert!(
            parse_app_insights(&vm)
                .unwrap_err()
                .0
                .contains("not an Application Insights")
        );
        assert!(parse_app_insights("bots").is_err());
        assert!(parse_app_insights(&format!("{ai}/extra")).is_err());
    }

    #[test]
    fn receivers() {
        assert!("ops@example.com".parse::<EmailAddress>().is_ok());
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "o ps@example.com",
            "ops@example",
            "a@b..c",
        ] {
            assert!(bad.parse::<EmailAddress>().is_err(), "{bad}");
        }
        assert!("https://hooks.example.com/x".parse::<WebhookUrl>().is_ok());
        assert!("ftp://hooks.example.com/x".parse::<WebhookUrl>().is_err());
        assert!("not a url".parse::<WebhookUrl>().is_err());
        let e = "https://user:hunter2@".parse::<WebhookUrl>().unwrap_err();
        assert!(!e.0.contains("hunter2"), "{e}");
        let la = format!(
            "/subscriptions/{SUB}/resourceGroups/ops/providers/Microsoft.Logic/workflows/teams=https://prod.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-10-01&sig=SECRET"
        );
        let r: LogicAppReceiver = la.parse().unwrap();
        assert!(r.callback_url.ends_with("sig=SECRET"));
        assert!("x=https://a.example".parse::<LogicAppReceiver>().is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://u:p@hooks.example.com/a?api-version=1&sig=SECRET"),
            "https://***@hooks.example.com/a?api-version=1&sig=***"
        );
        assert_eq!(
            redact_url("https://hooks.example.com/a"),
            "https://hooks.example.com/a"
        );
        let b = serde_json::json!({"properties": {"webhookReceivers": [{"serviceUri": "https://a:b@x.example/"}]}});
        assert!(!redact_body(&b).to_string().contains("a:b"));
    }

    #[test]
    fn names() {
        let p: NamePrefix = "cryptobot-".parse().unwrap();
        assert_eq!(p.short_name(), "cryptobot");
        let long: NamePrefix = "averyveryverylongprefix-".parse().unwrap();
        assert_eq!(long.short_name().len(), 12);
        assert!("1x".parse::<NamePrefix>().is_err());
        assert!("a/b".parse::<NamePrefix>().is_err());
        assert!(check_resource_name("cryptobot-vm-silent").is_ok());
        assert!(check_resource_name("a:b").is_err());
        assert!(check_resource_name("a.").is_err());
        assert_eq!(
            "West Europe".parse::<Region>().unwrap().as_str(),
            "westeurope"
        );
    }
}
