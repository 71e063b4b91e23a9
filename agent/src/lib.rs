//! `cryptobot-agent`: the health agent of the faucet_worker service.
//!
//! Layout: [`checks`] hold one file per check (probe + pure assessment); [`evaluate`] is the pure
//! decision core; [`report`] is the health model every interface shows; [`systemd`] is the only
//! module that talks D-Bus; [`state`] owns the atomic state files; [`config`] parses then validates;
//! [`commands`] has one file per subcommand; [`http`] is the HTTP front end of the daemon, [`grpc`]
//! serves the gRPC API and [`client`] is how the local commands reach it; [`alerts`] sends
//! notifications and telemetry.

pub mod alerts;
pub mod checks;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod forecast;
pub mod grpc;
pub mod handle;
pub mod health;
pub mod http;
pub mod logging;
pub mod report;
pub mod restart;
pub mod sdnotify;
pub mod state;
pub mod systemd;
