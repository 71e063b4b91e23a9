//! User delegation keys and user delegation SAS for one blob (pure): the key from the service's
//! `<UserDelegationKey>` answer, the string-to-sign of signed version [`SAS_VERSION`] (the layout of
//! versions 2020-12-06 and later), its HMAC-SHA256 under the base64-decoded key, and the query
//! `sp=r&st=…&se=…&skoid=…&sktid=…&skt=…&ske=…&sks=b&skv=…&spr=https&sv=…&sr=b&sig=…`. A SAS is a
//! [`Secret`]: its `Debug` and `Display` show `***`, never the signature.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};

/// The signed version (`sv`) of the SAS cryptoctl makes.
pub const SAS_VERSION: &str = "2023-11-03";

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A user delegation key, as Get User Delegation Key returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDelegationKey {
    /// `SignedOid`.
    pub signed_oid: String,
    /// `SignedTid`.
    pub signed_tid: String,
    /// `SignedStart`.
    pub signed_start: String,
    /// `SignedExpiry`.
    pub signed_expiry: String,
    /// `SignedService`.
    pub signed_service: String,
    /// `SignedVersion`.
    pub signed_version: String,
    /// `Value` (base64).
    pub value: Secret,
}

/// The text of the first `<tag>…</tag>` in `xml`.
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

impl UserDelegationKey {
    /// Parses the `<UserDelegationKey>` document.
    pub fn parse(xml: &str) -> Result<UserDelegationKey, String> {
        let get = |t: &str| {
            xml_text(xml, t)
                .map(str::to_owned)
                .ok_or_else(|| format!("the user delegation key has no <{t}>"))
        };
        Ok(UserDelegationKey {
            signed_oid: get("SignedOid")?,
            signed_tid: get("SignedTid")?,
            signed_start: get("SignedStart")?,
            signed_expiry: get("SignedExpiry")?,
            signed_service: get("SignedService")?,
            signed_version: get("SignedVersion")?,
            value: Secret::new(get("Value")?),
        })
    }
}

/// A time as SAS and key requests write it: `2026-01-01T00:00:00Z`.
pub fn sas_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The fields of a read-only user delegation SAS for one blob.
#[derive(Debug, Clone)]
pub struct BlobSas<'a> {
    /// Storage account.
    pub account: &'a str,
    /// Container.
    pub container: &'a str,
    /// Blob name.
    pub blob: &'a str,
    /// `st`.
    pub start: DateTime<Utc>,
    /// `se`.
    pub expiry: DateTime<Utc>,
}

impl BlobSas<'_> {
    /// The string-to-sign (signed version [`SAS_VERSION`]): permissions, start, expiry, canonical
    /// resource, the key's six fields, the three optional user and correlation ids, IP, protocol,
    /// version, resource, snapshot time, encryption scope and the five response headers.
    pub fn string_to_sign(&self, key: &UserDelegationKey) -> String {
        [
            "r",
            &sas_time(self.start),
            &sas_time(self.expiry),
            &format!("/blob/{}/{}/{}", self.account, self.container, self.blob),
            &key.signed_oid,
            &key.signed_tid,
            &key.signed_start,
            &key.signed_expiry,
            &key.signed_service,
            &key.signed_version,
            "",
            "",
            "",
            "",
            "https",
            SAS_VERSION,
            "b",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n")
    }

    /// The SAS query (without `?`), signed with `key`.
    pub fn query(&self, key: &UserDelegationKey) -> Result<Secret, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.value.expose())
            .map_err(|_| "the user delegation key's value is not base64".to_owned())?;
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw);
        let sig = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&hmac, self.string_to_sign(key).as_bytes()).as_ref());
        let pairs = [
            ("sp", "r".to_owned()),
            ("st", sas_time(self.start)),
            ("se", sas_time(self.expiry)),
            ("skoid", key.signed_oid.clone()),
            ("sktid", key.signed_tid.clone()),
            ("skt", key.signed_start.clone()),
            ("ske", key.signed_expiry.clone()),
            ("sks", key.signed_service.clone()),
            ("skv", key.signed_version.clone()),
            ("spr", "https".to_owned()),
            ("sv", SAS_VERSION.to_owned()),
            ("sr", "b".to_owned()),
            ("sig", sig),
        ];
        Ok(Secret::new(
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey><SignedOid>oid</SignedOid><SignedTid>tid</SignedTid><SignedStart>2026-01-01T00:00:00Z</SignedStart><SignedExpiry>2026-01-02T00:00:00Z</SignedExpiry><SignedService>b</SignedService><SignedVersion>2023-11-03</SignedVersion><Value>a2V5LWJ5dGVz</Value></UserDelegationKey>";

    #[test]
    fn string_to_sign_has_the_documented_fields_in_order() {
        let key = UserDelegationKey::parse(KEY).unwrap();
        assert_eq!(format!("{:?}", key.value), "***");
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let sas = BlobSas {
            account: "acct",
            container: "agents",
            blob: "cryptobot-agent",
            start: t("2026-01-01T00:05:00Z"),
            expiry: t("2026-01-01T00:20:00Z"),
        };
        let s = sas.string_to_sign(&key);
        let fields: Vec<&str> = s.split('\n').collect();
        assert_eq!(fields.len(), 24);
        assert_eq!(
            fields[..4],
            [
                "r",
                "2026-01-01T00:05:00Z",
                "2026-01-01T00:20:00Z",
                "/blob/acct/agents/cryptobot-agent"
            ]
        );
        assert_eq!(
            fields[4..10],
            [
                "oid",
                "tid",
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                "b",
                "2023-11-03"
            ]
        );
        assert_eq!(fields[14..17], ["https", SAS_VERSION, "b"]);
        let q = sas.query(&key).unwrap();
        assert_eq!(q.to_string(), "***");
        assert!(
            q.expose()
                .starts_with("sp=r&st=2026-01-01T00%3A05%3A00Z&se="),
            "{}",
            q.expose()
        );
        assert!(
            q.expose()
                .contains("&sks=b&skv=2023-11-03&spr=https&sv=2023-11-03&sr=b&sig=")
        );
    }
}
