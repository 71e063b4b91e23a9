//! Logging: `tracing` events to stderr (stdout stays for reports), filtered by `--log-level`, else
//! `RUST_LOG`, else `warn`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new("warn")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
