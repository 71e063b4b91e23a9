//! The Application Insights connection string, parsed the way the service defines it:
//! `InstrumentationKey=<guid>;IngestionEndpoint=https://<region>.in.applicationinsights.azure.com/;…`.
//!
//! Fields are `KEY=VALUE` separated by `;`; keys are case-insensitive; values are trimmed; a field
//! with no `=` or more than one is an error; unknown fields are ignored. The ingestion endpoint is
//! `IngestionEndpoint` if given, else `https://{Location.}dc.{EndpointSuffix}` if `EndpointSuffix` is
//! given, else `https://dc.services.visualstudio.com`; it is forced to https (plain http is kept only
//! for a loopback host, for a local test endpoint) and loses its trailing `/`. `Authorization`, if
//! present, must be `ikey`. Errors never echo the string (it is a secret).

use super::secret::Secret;

/// The endpoint used when the string names none.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com";

/// A parsed connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The instrumentation key (`iKey` of every envelope).
    pub instrumentation_key: Secret,
    /// Base URL of the ingestion service, https, no trailing `/`.
    pub ingestion_endpoint: String,
}

/// Why a connection string is not usable. The messages never contain the string's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    /// Nothing but separators and blanks.
    #[error("the connection string is empty")]
    Empty,
    /// A field without exactly one `=`.
    #[error("field {0} is not KEY=VALUE")]
    Malformed(usize),
    /// No `InstrumentationKey` (or an empty one).
    #[error("InstrumentationKey is missing")]
    MissingKey,
    /// `Authorization` is set to something else than `ikey`.
    #[error("Authorization must be ikey (AAD authentication is not supported)")]
    Authorization,
}

impl ConnectionString {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<ConnectionString, ConnectionStringError> {
        let mut ikey = None;
        let mut ingestion = None;
        let mut location = None;
        let mut suffix = None;
        let mut any = false;
        for (i, field) in text.split(';').enumerate() {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            any = true;
            let mut parts = field.split('=');
            let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(ConnectionStringError::Malformed(i + 1));
            };
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "instrumentationkey" => ikey = Some(value),
                "ingestionendpoint" => ingestion = Some(value),
                "location" => location = Some(value),
                "endpointsuffix" => suffix = Some(value),
                "authorization" if !value.eq_ignore_ascii_case("ikey") => {
                    return Err(ConnectionStringError::Authorization);
                }
                _ => {}
            }
        }
        if !any {
            return Err(ConnectionStringError::Empty);
        }
        let ikey = ikey
            .filter(|k| !k.is_empty())
            .ok_or(ConnectionStringError::MissingKey)?;
        let endpoint = match (ingestion.filter(|e| !e.is_empty()), suffix) {
            (Some(e), _) => e,
            (None, Some(s)) if !s.is_empty() => {
                let s = s.trim_start_matches('.');
                match location.filter(|l| !l.is_empty()) {
                    Some(l) => format!("https://{l}.dc.{s}"),
                    None => format!("https://dc.{s}"),
                }
            }
            _ => DEFAULT_INGESTION_ENDPOINT.to_owned(),
        };
        Ok(ConnectionString {
            instrumentation_key: Secret::new(ikey),
            ingestion_endpoint: normalise_endpoint(&endpoint),
        })
    }

    /// `{IngestionEndpoint}/v2.1/track`.
    pub fn track_url(&self) -> String {
        format!("{}/v2.1/track", self.ingestion_endpoint)
    }
}

/// Trimmed, https (http only for loopback), no trailing `/`.
fn normalise_endpoint(endpoint: &str) -> String {
    let e = endpoint.trim();
    let rest = if let Some(r) = strip_prefix_ci(e, "https://") {
        r
    } else if let Some(r) = strip_prefix_ci(e, "http://") {
        if is_loopback(r) {
            return format!("http://{}", r.trim_end_matches('/'));
        }
        r
    } else {
        e
    };
    format!("https://{}", rest.trim_end_matches('/'))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

fn is_loopback(host_and_path: &str) -> bool {
    let authority = host_and_path.split('/').next().unwrap_or_default();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00000000-1111-2222-3333-444444444444";

    fn parse(s: &str) -> Result<ConnectionString, ConnectionStringError> {
        ConnectionString::parse(s)
    }

    #[test]
    fn full_string_with_trailing_slash() {
        let c = parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=abc"
        ))
        .unwrap();
        assert_eq!(c.instrumentation_key.expose(), KEY);
        assert_eq!(
            c.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com"
        );
        assert_eq!(
            c.track_url(),
            "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track"
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_values_trimmed() {
        let c = parse(&format!(
            " instrumentationkey = {KEY} ; INGESTIONENDPOINT = https://x.example.com// ;"
        ))
        .unwrap();
        assert_eq!(c.instrumentation_key.expose(), KEY);
        assert_eq!(c.ingestion_endpoint, "https://x.example.com");
    }

    #[test]
    fn endpoint_precedence() {
        let c = parse(&format!(
            "InstrumentationKey={KEY};EndpointSuffix=applicationinsights.us;Location=usgov"
        ))
        .unwrap();
        assert_eq!(
            c.ingestion_endpoint,
            "https://usgov.dc.applicationinsights.us"
        );
        let c = parse(&format!(
            "InstrumentationKey={KEY};EndpointSuffix=applicationinsights.us"
        ))
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://dc.applicationinsights.us");
        let c = parse(&format!(
            "InstrumentationKey={KEY};EndpointSuffix=ignored.example;IngestionEndpoint=https://explicit.example"
        ))
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://explicit.example");
        let c = parse(&format!("InstrumentationKey={KEY}")).unwrap();
        assert_eq!(c.ingestion_endpoint, DEFAULT_INGESTION_ENDPOINT);
    }

    #[test]
    fn https_is_forced_except_for_loopback() {
        let c = parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=http://in.example.com/"
        ))
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://in.example.com");
        let c = parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=in.example.com"
        ))
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://in.example.com");
        let c = parse(&format!(
            "InstrumentationKey={KEY};IngestionEndpoint=http://127.0.0.1:4318/"
        ))
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "http://127.0.0.1:4318");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(ConnectionStringError::Empty));
        assert_eq!(parse(" ; ;"), Err(ConnectionStringError::Empty));
        assert_eq!(
            parse(&format!("InstrumentationKey={KEY};Foo")),
            Err(ConnectionStringError::Malformed(2))
        );
        assert_eq!(
            parse(&format!("InstrumentationKey={KEY};A=b=c")),
            Err(ConnectionStringError::Malformed(2))
        );
        assert_eq!(
            parse("IngestionEndpoint=https://x"),
            Err(ConnectionStringError::MissingKey)
        );
        assert_eq!(
            parse(&format!("InstrumentationKey={KEY};Authorization=aad")),
            Err(ConnectionStringError::Authorization)
        );
        assert!(parse(&format!("InstrumentationKey={KEY};Authorization=IKey")).is_ok());
        assert!(parse(&format!("InstrumentationKey={KEY};Unknown=1")).is_ok());
        let e = parse(&format!("InstrumentationKey={KEY};x")).unwrap_err();
        assert!(!e.to_string().contains(KEY));
    }
}
