//! The demo (`tests/demo.sh`): three lab VMs in two resource groups behind the Azure emulator, a
//! local git repository of a stand-in bot, `cryptoctl deploy` of the bot and the agent,
//! `cryptoctl health` across the fleet, a crashed worker brought back by the agent, and teardown
//! (the lab and the emulator are dropped on every exit path; `demo.sh` also collects a lab left by
//! Ctrl-C).

use std::time::Duration;

use cryptobot_tests::{
    Lab,
    agent::{kill_worker, wait_worker_back, worker_without_restart},
    azure_emulator::{AzureEmulator, EmulatedVm},
    bot::{BotRepo, prepare_vm},
    ctl::{cryptoctl, ssh_args},
    profile_dir,
};

/// The agent configuration of the demo: quick checks and a short first restart delay.
const DEMO_AGENT_CONFIG: &str =
    "[daemon]\ninterval = \"1s\"\n\n[restart]\ninitial_delay = \"2s\"\n";

fn header(text: &str) {
    println!("\n\x1b[1m==== {text}\x1b[0m");
}

fn show_command(args: &[String]) {
    println!("\x1b[2m$ cryptoctl {}\x1b[0m", args.join(" "));
}

fn ctl(emu: &AzureEmulator, extra: &[String], args: &[&str]) -> bool {
    let mut all: Vec<String> = extra.to_vec();
    all.extend(args.iter().map(|s| (*s).to_owned()));
    show_command(&all);
    let status = cryptoctl(emu).args(&all).status().expect("run cryptoctl");
    status.success()
}

fn main() {
    header(
        "1. A fleet: three lab VMs (real systemd + sshd) in two resource groups, behind the Azure emulator",
    );
    let repo = BotRepo::create();
    println!(
        "stand-in bot repository: {} (master {})",
        repo.url(),
        &repo.good[..12]
    );
    let lab = Lab::builder()
        .vms(3)
        .ssh(true)
        .worker(false)
        .bind(&repo.dir)
        .start();
    for vm in lab.vms() {
        prepare_vm(vm);
    }
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::lab("DevNode01", "APPSERVRG", lab.vm(1)))
        .vm(EmulatedVm::lab("DevNode02", "APPSERVRG", lab.vm(2)))
        .vm(EmulatedVm::lab("Bot03", "BOTS-RG", lab.vm(3)))
        .start();
    println!("Azure emulator at {}", emu.endpoint());
    let config = repo.dir.join("agent.toml");
    std::fs::write(&config, DEMO_AGENT_CONFIG).expect("demo agent.toml");
    let none: Vec<String> = Vec::new();
    ctl(&emu, &none, &["vms", "--all"]);

    header(
        "2. Deploy the bot and the agent to APPSERVRG over run-command (the VMs fetch the agent binary)",
    );
    let agent = profile_dir().join("cryptobot-agent");
    let common = [
        "--repo-url".to_owned(),
        repo.url(),
        "--agent-config".to_owned(),
        config.display().to_string(),
        "--gate-timeout".to_owned(),
        "60s".to_owned(),
    ];
    let mut rc_args: Vec<String> = vec![
        "deploy".into(),
        "-g".into(),
        "APPSERVRG".into(),
        "--agent-url".into(),
        format!("file://{}", agent.display()),
        "--agent-binary".into(),
        agent.display().to_string(),
    ];
    rc_args.extend(common.iter().cloned());
    let refs: Vec<&str> = rc_args.iter().map(String::as_str).collect();
    assert!(ctl(&emu, &none, &refs), "deploy to APPSERVRG failed");

    header("3. Deploy to BOTS-RG over ssh (the binary is copied over the connection)");
    let ssh = ssh_args(&lab);
    let mut ssh_args: Vec<String> = vec!["deploy".into(), "-g".into(), "BOTS-RG".into()];
    ssh_args.extend(common.iter().cloned());
    let refs: Vec<&str> = ssh_args.iter().map(String::as_str).collect();
    assert!(ctl(&emu, &ssh, &refs), "deploy to BOTS-RG failed");

    header("4. Fleet health");
    ctl(&emu, &none, &["health", "--all"]);

    header(
        "5. Crash the worker on DevNode02 (systemd's own restart is off, so only the agent can bring it back)",
    );
    let vm = lab.vm(2);
    worker_without_restart(vm);
    let pid = kill_worker(vm);
    println!("killed the worker (pid {pid}) with SIGKILL");
    ctl(
        &emu,
        &none,
        &["health", "-g", "APPSERVRG", "-n", "DevNode02"],
    );
    println!("waiting for the agent to restart it ...");
    wait_worker_back(vm, &pid, Duration::from_secs(60));
    let journal = vm.journal("cryptobot-agent.service");
    for line in journal.lines().filter(|l| l.contains("restart")).take(5) {
        println!("  agent: {line}");
    }

    header("6. Fleet health after the agent's restart");
    ctl(&emu, &none, &["health", "--all"]);

    header("7. Teardown");
    drop(emu);
    drop(lab);
    drop(repo);
    println!("lab, emulator and repository removed");
}
