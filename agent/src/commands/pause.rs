//! `cryptobot-agent pause [--for DURATION]`: suspend the running agent's restarts (and alerts), for
//! a while or until `resume`.

use std::{path::Path, process::ExitCode};

use cryptobot_proto::v1 as pb;

use crate::{
    cli::PauseArgs,
    client::{Client, ClientError},
};

pub(super) async fn run(socket: &Path, args: &PauseArgs) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket).await?;
    let response = client
        .rpc()
        .pause(pb::PauseRequest {
            duration_seconds: args.duration.map(|d| d.as_secs().max(1)),
        })
        .await
        .map_err(|e| client.error(e))?
        .into_inner();
    match response.until {
        Some(until) => println!("paused until {until}"),
        None => println!("paused until resumed (cryptobot-agent resume)"),
    }
    Ok(ExitCode::SUCCESS)
}
