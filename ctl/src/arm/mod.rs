//! A small typed Azure Resource Manager client on reqwest, one file per operation family: VMs
//! (list, instance view), network (NIC, public IP) and run-command (the long-running operation).
//! `client` holds the HTTP part (tokens, retries, throttling) and `errors` the ARM error shape.

pub mod client;
pub mod errors;
pub mod network;
pub mod run_command;
pub mod vms;

pub use client::{ArmClient, RetryPolicy};
pub use errors::ArmError;
pub use run_command::{RunCommandInput, RunCommandParameter, ScriptOutput};
pub use vms::{GuestAgent, InstanceView, PowerState, VirtualMachine};
