//! `cryptoctl restart`: restart the worker through each VM's agent (`cryptobot-agent restart`),
//! falling back to `systemctl restart` with a warning when the agent is missing, not running or too
//! old to have the command.

use super::{Ctx, control::control};
use crate::{cli::RestartArgs, remote::Action};

pub(super) async fn run(ctx: &Ctx, args: &RestartArgs) -> anyhow::Result<u8> {
    control(ctx, &args.selection, Action::Restart { force: args.force }).await
}
