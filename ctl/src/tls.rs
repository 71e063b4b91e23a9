//! The one HTTP client of cryptoctl: reqwest on rustls (ring), trusting the platform's roots plus
//! the certificates of `SSL_CERT_FILE` when it is set (how a proxy's or a test's CA is added).

use std::time::Duration;

use anyhow::Context as _;

/// Installs rustls' ring provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for ARM and identity calls. Redirects are not followed (ARM does not use them and
/// a bearer token must not travel elsewhere).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .https_only(false) // IMDS is plain HTTP on a link-local address; ARM URLs are checked to be https
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("cryptoctl/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read SSL_CERT_FILE {}", path.to_string_lossy()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("SSL_CERT_FILE {} is not PEM", path.to_string_lossy()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("cannot build the HTTP client")
}
