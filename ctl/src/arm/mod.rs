//! A small typed Azure Resource Manager client on reqwest, one file per operation family: VMs
//! (list, instance view), network (NIC, public IP), run-command (the long-running operation) and
//! the subscription itself.
//! `client` holds the HTTP part (tokens, retries, throttling) and `errors` the ARM error shape.

pub mod client;
pub mod errors;
pub mod logs_query;
pub mod monitor;
pub mod network;
pub mod resource_graph;
pub mod run_command;
pub mod subscriptions;
pub mod vms;

pub use client::{ArmClient, RetryPolicy};
pub use errors::ArmError;
pub use run_command::{RunCommandInput, RunCommandParameter, ScriptOutput};
pub use subscriptions::Subscription;
pub use vms::{GuestAgent, InstanceView, PowerState, VirtualMachine};
