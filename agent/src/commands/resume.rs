//! `cryptobot-agent resume`: end the running agent's pause.

use std::{path::Path, process::ExitCode};

use cryptobot_proto::v1 as pb;

use crate::client::{Client, ClientError};

pub(super) async fn run(socket: &Path) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket).await?;
    client
        .rpc()
        .resume(pb::ResumeRequest {})
        .await
        .map_err(|e| client.error(e))?;
    println!("resumed");
    Ok(ExitCode::SUCCESS)
}
