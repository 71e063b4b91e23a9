//! `cryptobot-agent run`: the long-running daemon.
//!
//! A supervisor task owns all mutable state: it follows the worker unit through systemd's D-Bus
//! signals, runs the resource checks at a fixed rate, decides restarts, and publishes one
//! [`Snapshot`] per evaluation. Front ends (HTTP, gRPC) hold an [`AgentHandle`]: they read the latest
//! snapshot and send [`Control`] requests; they never run probes.

pub mod handle;
pub mod testing;

pub use handle::{
    AgentGone, AgentHandle, BackoffView, Control, ControlReply, ControlRequest, DaemonState, Event,
    EventKind, PauseView, Sample, Snapshot,
};
