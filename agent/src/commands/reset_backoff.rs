//! `cryptobot-agent reset-backoff`: make the running agent forget its restart backoff.

use std::{path::Path, process::ExitCode};

use cryptobot_proto::v1 as pb;

use crate::client::{Client, ClientError};

pub(super) async fn run(socket: &Path) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket).await?;
    client
        .rpc()
        .reset_backoff(pb::ResetBackoffRequest {})
        .await
        .map_err(|e| client.error(e))?;
    println!("restart backoff reset: the next restart waits only the initial delay");
    Ok(ExitCode::SUCCESS)
}
