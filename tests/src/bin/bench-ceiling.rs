//! The ceiling of the HTTP benchmark: the smallest axum server answering `GET /health` with a
//! constant body, on the same kind of runtime as the agent (tokio, one thread). Serves on the
//! address given as its only argument until it is killed or `--for SECONDS` (default 600) elapses.

use std::time::Duration;

use axum::{Router, routing::get};

const BODY: &str = r#"{"status":"healthy","ApplicationHealthState":"Healthy"}"#;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bench-ceiling ADDR [--for SECONDS]"))?;
    let secs: u64 = match (args.next().as_deref(), args.next()) {
        (Some("--for"), Some(s)) => s.parse()?,
        _ => 600,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let app = Router::new().route(
            "/health",
            get(|| async { ([("content-type", "application/json")], BODY) }),
        );
        tokio::select! {
            r = axum::serve(listener, app) => r?,
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
        }
        Ok(())
    })
}
