//! Restarting the worker with exponential backoff: [`policy`] decides (pure), [`control`] is the
//! automatic pass and the answer to requests that the daemon and `check --restart` share (pure),
//! [`state`] is the persisted `restart_backoff.json`, [`maintenance`] is the persisted pause,
//! [`helper`] is how the restart is asked for (D-Bus, or the root-owned helper where polkit cannot
//! grant it).

pub mod control;
pub mod helper;
pub mod maintenance;
pub mod policy;
pub mod state;
