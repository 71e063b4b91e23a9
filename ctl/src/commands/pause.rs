//! `cryptoctl pause [--for 1h]`: suspend each VM's agent's restarts and alerts.

use super::{Ctx, control::control};
use crate::{cli::PauseArgs, remote::Action};

pub(super) async fn run(ctx: &Ctx, args: &PauseArgs) -> anyhow::Result<u8> {
    control(
        ctx,
        &args.selection,
        Action::Pause {
            duration: args.duration,
        },
    )
    .await
}
