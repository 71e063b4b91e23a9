//! `cryptoctl deploy --agent-storage ACCOUNT/CONTAINER` over run-command against the emulator's
//! Blob Storage: the agent is uploaded by blocks with the operator's token, each VM downloads it with
//! a user delegation SAS and checks its SHA-256, and the deploy ends healthy without `--agent-url`;
//! the SAS never shows in cryptoctl's output. A SAS that expired before the download fails the
//! deploy with the service's words and changes nothing; so do a container name Azure would refuse,
//! an account that refuses the token, an account that does not exist and a file that is not a
//! Debian package.

use std::process::Output;

use cryptobot_tests::{
    Lab, Vm,
    bot::FAST_AGENT_CONFIG,
    ctl::show,
    deploy::{DeployFleet, GROUP},
    dist_agent_bin,
};

const ACCOUNT: &str = "cryptobotdeploy";

/// The VM trusts the emulator's CA, as an Azure VM trusts the public CAs of blob.core.windows.net.
fn trust_emulator(f: &DeployFleet, vm: &Vm) {
    let pem = std::fs::read_to_string(f.emu.ca_file()).expect("CA");
    vm.write_file("/usr/local/share/ca-certificates/azure-emulator.crt", pem);
    vm.sh("update-ca-certificates >/dev/null 2>&1");
}

fn untouched(vm: &Vm) -> String {
    vm.sh(
        "ls -d /home/azureuser/Repositories /etc/systemd/system/faucet_worker.service \
         /usr/local/bin/cryptobot-agent /usr/bin/cryptobot-agent 2>/dev/null | wc -l",
    )
    .trim()
    .to_owned()
}

fn deploy(f: &DeployFleet, vm: &str, extra: &[&str]) -> Output {
    let args = [&["-n", vm, "--gate-timeout", "30s"][..], extra].concat();
    f.deploy(false, &args)
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn agent_from_blob_storage_over_run_command_and_what_stops_it() {
    let f = DeployFleet::start(Lab::builder(), &["Bot01", "Bot02"], FAST_AGENT_CONFIG);
    for i in 1..=2 {
        trust_emulator(&f, f.vm(i));
    }
    f.emu.set_storage(|s| s.add_account(ACCOUNT, &["agents"]));
    let target = format!("{ACCOUNT}/agents");

    // The dry run names the blob, never a SAS, and contacts nothing.
    let out = deploy(&f, "Bot01", &["--agent-storage", &target, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = said(&out);
    assert!(
        text.contains("/agents/cryptobot-agent-") && text.contains("?***"),
        "{text}"
    );
    assert!(f.emu.seen().is_empty(), "{:?}", f.emu.seen());

    // Run-command, no --agent-url: uploaded by blocks, downloaded with a SAS, healthy.
    let out = deploy(&f, "Bot01", &["--agent-storage", &target]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let agent = std::fs::read(dist_agent_bin()).expect("dist agent");
    let blocks = f
        .emu
        .seen()
        .iter()
        .filter(|s| s.uri.contains("comp=block&") && s.status == 201)
        .count();
    assert!(
        blocks >= 2,
        "a file of several MB goes up in blocks: {:?}",
        f.emu.seen()
    );
    let sha = sha256_hex(&agent);
    let blob = f
        .emu
        .blob(ACCOUNT, "agents", &format!("cryptobot-agent-{sha}"))
        .expect("the uploaded agent");
    assert!(blob == agent, "the blob is the agent");
    assert_eq!(
        f.vm(1)
            .sh("sha256sum < /usr/local/bin/cryptobot-agent | cut -d' ' -f1")
            .trim(),
        sha
    );
    assert!(
        f.vm(1)
            .run(&["systemctl", "is-active", "-q", "cryptobot-agent.service"])
            .status
            .success()
    );
    // The SAS went to the script only: never in cryptoctl's output.
    let (_, params) = f.emu.scripts().into_iter().last().expect("a script ran");
    let url = params
        .iter()
        .find(|p| p.contains("sig="))
        .expect("a SAS URL");
    assert!(
        url.contains("sp=r&") && url.contains("&sr=b&"),
        "read-only, one blob"
    );
    let sig = url.split("sig=").nth(1).expect("sig");
    let text = said(&out);
    assert!(!text.contains(sig) && !text.contains("sig="), "{text}");

    // A SAS that expired before the download: refused with the service's words, nothing changed.
    f.emu
        .set_storage(|s| s.sas_clock_ahead = chrono::Duration::hours(3));
    let out = deploy(&f, "Bot02", &["--agent-storage", &target]);
    let text = said(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("HTTP 403 AuthenticationFailed")
            && text.contains("Signature not valid in the specified time frame")
            && text.contains("the SAS expired"),
        "{text}"
    );
    assert_eq!(untouched(f.vm(2)), "0", "the refused deploy changed the VM");
    f.emu
        .set_storage(|s| s.sas_clock_ahead = chrono::Duration::zero());

    // Bad input, each stopped before any VM changes.
    let out = deploy(
        &f,
        "Bot02",
        &["--agent-storage", &format!("{ACCOUNT}/Agents_1")],
    );
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(said(&out).contains("InvalidResourceName"), "{}", show(&out));
    let out = deploy(&f, "Bot02", &["--agent-storage", "nosuchaccount/agents"]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(said(&out).contains("ResourceNotFound"), "{}", show(&out));
    f.emu.set_storage(|s| {
        s.refuse_token.insert(ACCOUNT.to_owned());
    });
    let out = deploy(&f, "Bot02", &["--agent-storage", &target]);
    let text = said(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("403 AuthorizationPermissionMismatch")
            && text.contains("Storage Blob Data Contributor"),
        "{text}"
    );
    f.emu.set_storage(|s| {
        s.refuse_token.clear();
    });
    let not_deb = f.config.clone();
    let mut c = f.cryptoctl(false);
    let out = c
        .args([
            "deploy",
            "-g",
            GROUP,
            "-n",
            "Bot02",
            "--agent-storage",
            &target,
            "--agent-deb",
        ])
        .arg(&not_deb)
        .output()
        .expect("cryptoctl");
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        said(&out).contains("not a Debian package"),
        "{}",
        show(&out)
    );
    assert_eq!(untouched(f.vm(2)), "0", "a refused deploy changed the VM");
}
