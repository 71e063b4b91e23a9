//! Running `cryptoctl` against the Azure emulator: the binary with the emulator's environment
//! (ARM endpoint, test CA, environment credential, subscription) and nothing of the caller's Azure
//! setup, so only 127.0.0.1 and the lab's addresses are ever contacted.

use std::process::{Command, Output, Stdio};

use crate::{Lab, azure_emulator::AzureEmulator, binary};

/// The cryptoctl binary.
pub fn ctl_bin() -> std::path::PathBuf {
    binary("cryptoctl")
}

/// A `cryptoctl` command set up for `emu` (the agent path is the workspace's agent binary, which
/// the lab bind-mounts into every VM at the same path).
pub fn cryptoctl(emu: &AzureEmulator) -> Command {
    let mut c = Command::new(ctl_bin());
    for var in [
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_AUTHORITY_HOST",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_SUBSCRIPTION_ID",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
        "CRYPTOCTL_ARM_ENDPOINT",
        "CRYPTOCTL_SSH_COMMAND",
        "CRYPTOCTL_AGENT_PATH",
        "SSL_CERT_FILE",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c.envs(emu.env())
        .env("CRYPTOCTL_AGENT_PATH", crate::agent_bin())
        .stdin(Stdio::null());
    c
}

/// Runs it with `args`.
pub fn run(emu: &AzureEmulator, args: &[&str]) -> Output {
    cryptoctl(emu).args(args).output().expect("run cryptoctl")
}

/// The options that make cryptoctl reach `lab`'s VMs over ssh: as root with the lab's key, the
/// client running inside the lab's switch namespace with the lab's ssh configuration.
pub fn ssh_args(lab: &Lab) -> Vec<String> {
    vec![
        "--transport".into(),
        "ssh".into(),
        "--ssh-user".into(),
        "root".into(),
        "--ssh-key".into(),
        lab.dir().join("id_ed25519").display().to_string(),
        "--ssh-command".into(),
        format!(
            "ip netns exec {} ssh -F {}",
            lab.vm(1).switch_netns,
            lab.ssh_config().display()
        ),
    ]
}

/// Runs it with `args` over ssh to `lab`'s VMs.
pub fn run_ssh(emu: &AzureEmulator, lab: &Lab, args: &[&str]) -> Output {
    cryptoctl(emu)
        .args(ssh_args(lab))
        .args(args)
        .output()
        .expect("run cryptoctl")
}

/// Interrupts a running cryptoctl as Ctrl-C does (SIGINT) and returns what it printed; it must
/// exit 130.
pub fn interrupt(child: std::process::Child) -> Output {
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -INT {}", child.id());
    let out = child.wait_with_output().expect("wait for cryptoctl");
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    out
}

/// stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cryptoctl ARGS` against the emulator with its telemetry query APIs too
/// (`CRYPTOCTL_QUERY_ENDPOINT`), and no query target from the test's own environment.
pub fn run_with_query_api(emu: &AzureEmulator, args: &[&str]) -> Output {
    cryptoctl(emu)
        .env("CRYPTOCTL_QUERY_ENDPOINT", emu.endpoint())
        .env_remove("CRYPTOCTL_APP_INSIGHTS")
        .env_remove("CRYPTOCTL_WORKSPACE")
        .args(args)
        .output()
        .expect("run cryptoctl")
}

/// `health --all --source telemetry --app-insights APP_ID` (the fleets' Application Insights)
/// followed by `extra`: fleet health from telemetry, as the telemetry tests and benchmark run it.
pub fn telemetry_health<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "health",
        "--all",
        "--source",
        "telemetry",
        "--app-insights",
        crate::azure_emulator::fleet::APP_ID,
    ];
    args.extend_from_slice(extra);
    args
}

/// The JSON array cryptoctl printed; panics with its output when it is not one.
pub fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("not a JSON array: {}", show(out)))
}
