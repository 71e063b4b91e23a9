//! `cryptoctl`: the operator's CLI for a fleet of cryptobot VMs. For now it only reports its version;
//! fleet health, restarts, deploys and rollbacks arrive as subcommands.

use clap::Parser;

/// Operator CLI for the cryptobot fleet.
#[derive(Debug, Parser)]
#[command(name = "cryptoctl", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!("cryptoctl {}", env!("CARGO_PKG_VERSION"));
}
