//! The gRPC contract between `cryptobot-agent` and `cryptoctl`. The `.proto` files in this crate are
//! the only interface the two binaries share.
//!
//! The Rust code is generated from `cryptobot/agent/v1/agent.proto` and committed in `src/gen/`;
//! the test `generated_code_is_current` fails when it is out of date and says how to regenerate it.

/// `cryptobot.agent.v1`: the agent's status, events and controls.
pub mod agent {
    /// Version 1 of the API.
    #[allow(
        clippy::all,
        clippy::pedantic,
        missing_docs,
        missing_debug_implementations
    )]
    pub mod v1 {
        include!("gen/cryptobot.agent.v1.rs");
    }
}

pub use agent::v1;
