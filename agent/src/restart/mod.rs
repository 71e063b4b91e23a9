//! Restarting the worker with exponential backoff: [`policy`] decides (pure), [`state`] is the
//! persisted `restart_backoff.json`, [`maintenance`] is the persisted pause.

pub mod maintenance;
pub mod policy;
pub mod state;
