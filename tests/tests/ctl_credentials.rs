//! cryptoctl's credential chain as operators use it, against the emulator: the Azure CLI (an `az`
//! on the PATH answering as the CLI does, including the subscription fallback and an expired
//! login), managed identity (the IMDS token shape, `expires_on` as a string; a hanging or HTML
//! endpoint is skipped after its deadline), workload identity (a federated token file), and links
//! that point at another host, refused before the token goes there.
//!
//! What differs from production: the `az` here is a stand-in script that prints what the real CLI
//! prints for these two commands (azure-cli 2.54 or newer: `expires_on` in epoch seconds), and the
//! managed identity endpoint is given by `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` (the same token
//! client and answer shape as on a VM, whose fixed IMDS address no test may contact).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cryptobot_tests::{
    azure_emulator::{
        AzureEmulator, EmulatedVm, Faults, ManagedIdentity, SUBSCRIPTION, TENANT,
        identity::{FEDERATED_TOKEN, IDENTITY_HEADER, MANAGED_IDENTITY_PATH},
    },
    ctl::{cryptoctl, show},
};

fn emulator(faults: Faults) -> AzureEmulator {
    AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("Bot01", "BOTS-RG"))
        .vm(EmulatedVm::synthetic("Bot02", "BOTS-RG"))
        .page_size(1)
        .faults(faults)
        .start()
}

/// cryptoctl against `emu` with no credential configured but the managed identity endpoint, and
/// `path_dir` first on the PATH.
fn unconfigured(emu: &AzureEmulator, path_dir: &Path) -> Command {
    let mut c = cryptoctl(emu);
    for var in [
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_SUBSCRIPTION_ID",
    ] {
        c.env_remove(var);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("{}:{path}", path_dir.display()))
        .env(
            "IDENTITY_ENDPOINT",
            format!("{}{MANAGED_IDENTITY_PATH}", emu.endpoint()),
        )
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env("HOME", path_dir);
    c
}

/// A directory with an `az` that answers `account get-access-token` with `token` (or, once
/// `expired` exists next to it, the CLI's error for an expired login) and `account show` with the
/// emulator's subscription; each call's arguments are appended to `calls`.
fn fake_az(token: &str) -> (tempfile::TempDir, PathBuf) {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    fake_az_expiring(token, &expires.to_string())
}

/// [`fake_az`] with `expires_on` as given (JSON text).
fn fake_az_expiring(token: &str, expires: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
case "$*" in
  *"account get-access-token"*)
    if [ -e "$here/expired" ]; then
      echo "ERROR: AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2026-01-01T00:00:00.0000000Z and was inactive for 90.00:00:00. Trace ID: 0 Correlation ID: 0 Timestamp: 2026-12-01 00:00:00Z" >&2
      echo "Interactive authentication is needed. Please run:" >&2
      echo "az login --scope https://management.azure.com/.default" >&2
      exit 1
    fi
    printf '{{\n  "accessToken": "{token}",\n  "expiresOn": "2030-01-02 03:04:05.000000",\n  "expires_on": {expires},\n  "subscription": "{SUBSCRIPTION}",\n  "tenant": "{TENANT}",\n  "tokenType": "Bearer"\n}}\n'
    ;;
  *"account show"*) echo "{SUBSCRIPTION}" ;;
  *) echo "az: '$1' is not in the 'az' command group." >&2; exit 2 ;;
esac
"#
    );
    let az = dir.path().join("az");
    std::fs::write(&az, script).unwrap();
    std::fs::set_permissions(&az, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let calls = dir.path().join("calls");
    (dir, calls)
}

fn vms(c: &mut Command) -> Output {
    c.args(["vms", "--all", "-o", "json"]).output().unwrap()
}

#[test]
fn the_azure_cli_credential_and_its_subscription() {
    let emu = emulator(Faults::default());
    let (dir, calls) = fake_az(&emu.token());
    let out = vms(&mut unconfigured(&emu, dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Bot02"),
        "{}",
        show(&out)
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.contains(
            "account get-access-token -o json --scope https://management.azure.com/.default"
        ),
        "{calls}"
    );
    assert!(
        calls.contains("account show"),
        "the subscription comes from az: {calls}"
    );

    // An expired login: the CLI's own words, and what else was tried.
    std::fs::write(dir.path().join("expired"), "").unwrap();
    let out = vms(&mut unconfigured(&emu, dir.path()));
    let said = show(&out);
    assert_eq!(out.status.code(), Some(70), "{said}");
    assert!(said.contains("AADSTS700082"), "{said}");
    assert!(said.contains("managed identity: "), "{said}");
    assert!(!said.contains(&emu.token()), "the token was printed");
}

#[test]
fn managed_identity_and_its_failures() {
    let emu = emulator(Faults {
        managed_identity: ManagedIdentity::Token,
        ..Faults::default()
    });
    let empty = tempfile::tempdir().unwrap();
    let mut c = unconfigured(&emu, empty.path());
    let out = vms(c.env("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        emu.seen()
            .iter()
            .any(|s| s.uri.starts_with(MANAGED_IDENTITY_PATH) && s.status == 200),
        "the token came from the managed identity endpoint"
    );

    // A hanging endpoint is given up after its deadline, an HTML page is an error; either way the
    // chain goes on (here to an Azure CLI that is not installed) and says why.
    for (mode, why) in [
        (
            ManagedIdentity::Hang,
            "no managed identity endpoint answered",
        ),
        (ManagedIdentity::Html, "managed identity: "),
    ] {
        emu.set_faults(|f| f.managed_identity = mode);
        let started = std::time::Instant::now();
        let mut c = unconfigured(&emu, empty.path());
        let out = vms(c.env("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION));
        let said = show(&out);
        assert_eq!(out.status.code(), Some(70), "{mode:?}: {said}");
        assert!(
            said.contains(why) && said.contains("Azure CLI: "),
            "{mode:?}: {said}"
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "{mode:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn workload_identity_with_a_federated_token_file() {
    let emu = emulator(Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let run = |contents: &str| {
        std::fs::write(&file, contents).unwrap();
        let mut c = unconfigured(&emu, dir.path());
        vms(c
            .env("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
            .env("AZURE_TENANT_ID", TENANT)
            .env(
                "AZURE_CLIENT_ID",
                cryptobot_tests::azure_emulator::CLIENT_ID,
            )
            .env("AZURE_FEDERATED_TOKEN_FILE", &file))
    };
    let out = run(FEDERATED_TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // A token the tenant does not trust: the error is shown and no other credential is tried.
    let out = run("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzb21lb25lLWVsc2UifQ.c2ln");
    let said = show(&out);
    assert_eq!(out.status.code(), Some(70), "{said}");
    assert!(
        said.contains("workload identity") && said.contains("700211"),
        "{said}"
    );
    assert!(
        !emu.seen()
            .iter()
            .any(|s| s.uri.starts_with(MANAGED_IDENTITY_PATH)),
        "a configured credential that fails does not fall through"
    );
}

#[test]
fn links_to_another_host_are_refused_before_the_token_goes_there() {
    // The other host: a listener that must never see a connection.
    let other = TcpListener::bind("127.0.0.2:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let elsewhere = format!("https://127.0.0.2:{}", other.local_addr().unwrap().port());
    let emu = emulator(Faults {
        foreign_links: Some(elsewhere),
        ..Faults::default()
    });
    // nextLink of Resource Manager's VM list (Resource Graph, the default, pages by $skipToken)
    let out = cryptoctl(&emu)
        .args(["vms", "--inventory", "arm", "--all"])
        .output()
        .unwrap();
    let said = show(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("refusing to follow a link outside"), "{said}");
    // Location / Azure-AsyncOperation of a run-command
    let out = cryptoctl(&emu)
        .args(["health", "-g", "BOTS-RG", "-n", "Bot01", "-o", "json"])
        .output()
        .unwrap();
    let said = show(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("refusing to follow a link outside"), "{said}");
    assert!(
        matches!(other.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the other host was contacted"
    );
}

#[test]
fn a_token_endpoint_that_answers_html_is_a_clear_error() {
    let emu = emulator(Faults {
        token_html: true,
        ..Faults::default()
    });
    let out = cryptoctl(&emu).args(["vms", "--all"]).output().unwrap();
    let said = show(&out);
    assert_eq!(out.status.code(), Some(70), "{said}");
    assert!(said.contains("environment failed: "), "{said}");
}

/// Absurd token lifetimes from the CLI (already expired, or beyond any calendar) end in a clear
/// answer within a bounded time, never a loop.
#[test]
fn absurd_token_lifetimes_are_bounded() {
    let emu = emulator(Faults::default());
    for expires in ["0", "99999999999999999"] {
        let (dir, calls) = fake_az_expiring(&emu.token(), expires);
        let started = std::time::Instant::now();
        let out = vms(&mut unconfigured(&emu, dir.path()));
        let said = show(&out);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(70),
            "{expires}: {said}"
        );
        if out.status.code() == Some(70) {
            assert!(said.contains("Azure CLI: "), "{expires}: {said}");
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "{expires}: {:?}",
            started.elapsed()
        );
        let asked = std::fs::read_to_string(&calls).unwrap_or_default();
        assert!(
            asked.matches("get-access-token").count() < 20,
            "{expires}: {asked}"
        );
    }
}
