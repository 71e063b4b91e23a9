//! `cryptoctl resume`: end the agents' pause.

use super::{Ctx, control::control};
use crate::{cli::ResumeArgs, remote::Action};

pub(super) async fn run(ctx: &Ctx, args: &ResumeArgs) -> anyhow::Result<u8> {
    control(ctx, &args.selection, Action::Resume).await
}
