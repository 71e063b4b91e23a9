//! `azure_core`'s HTTP client interface implemented on cryptoctl's own reqwest client, so the
//! identity crate's token calls use the same rustls stack and trust store (`SSL_CERT_FILE`) as the
//! Resource Manager calls, and `azure_core`'s own reqwest (another version) is not built at all.

use std::collections::HashMap;

use azure_core::{
    error::{Error, ErrorKind},
    http::{
        AsyncRawResponse, Body, HttpClient, Method, Request,
        headers::{HeaderName, HeaderValue, Headers},
    },
};

/// reqwest as an `azure_core` transport.
#[derive(Debug, Clone)]
pub struct ReqwestTransport(pub reqwest::Client);

fn method(m: Method) -> azure_core::Result<reqwest::Method> {
    Ok(match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
        other => {
            return Err(Error::with_message(
                ErrorKind::Other,
                format!("unsupported method {other:?}"),
            ));
        }
    })
}

#[async_trait::async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut req = self
            .0
            .request(method(request.method())?, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        req = match request.body() {
            Body::Bytes(bytes) => req.body(bytes.to_vec()),
            Body::SeekableStream(_) => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streaming request bodies are not supported",
                ));
            }
        };
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            Error::with_error(kind, e, "HTTP request failed")
        })?;
        let status = resp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_str().ok()?.to_owned()),
                ))
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::with_error(ErrorKind::Io, e, "cannot read the response body"))?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            body.to_vec(),
        ))
    }
}
