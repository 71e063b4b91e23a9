//! `cryptoctl`, the operator's CLI for the cryptobot fleet: Azure access (credentials, a small
//! typed Resource Manager client), the two transports to the VMs (run-command, ssh) around one
//! remote script, and the commands (`vms`, `health`, `restart`, `pause`, `resume`, `logs`).
//!
//! It does not depend on the agent crate: it reads the agent's JSON report as plain JSON.

pub mod arm;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod fleet;
pub mod limiter;
pub mod model;
pub mod output;
pub mod remote;
pub mod storage;
pub mod tls;
pub mod validate;
