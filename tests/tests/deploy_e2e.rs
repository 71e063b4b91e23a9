//! `cryptoctl deploy` and `rollback` end to end: lab VMs (fresh: no bot, no agent) behind the
//! Azure emulator, the stand-in bot's git repository bind-mounted into them. Deploys over ssh and
//! over run-command, a ref that crashes at start (the gate fails and the deploy rolls back),
//! `rollback` by default and with `--commit`, canary edits with hostile values, `--dry-run`, a
//! locally edited `agent.toml`, several VMs in order (stopping at the first failure, or all at once
//! with `--max-parallel`) and `rollback --agent`.

use std::process::{Command, Output};

use cryptobot_tests::{
    Lab, Vm,
    azure_emulator::{AzureEmulator, EmulatedVm},
    bot::{BotRepo, FAST_AGENT_CONFIG, FOOTPRINT, deployed_commit, prepare_vm},
    ctl::{cryptoctl, run_ssh, show, ssh_args},
    http_server::HttpServer,
    profile_dir,
};
use serde_json::Value;

struct Fleet {
    lab: Lab,
    emu: AzureEmulator,
    repo: BotRepo,
    config: std::path::PathBuf,
    /// Where run-command deploys fetch the agent from.
    agent_url: String,
}

fn fleet(n: usize) -> Fleet {
    let names: Vec<String> = (1..=n).map(|i| format!("Bot0{i}")).collect();
    fleet_named(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Lab VM `i` (1-based) is the emulator's `names[i - 1]`, listed in this order.
fn fleet_named(names: &[&str]) -> Fleet {
    let repo = BotRepo::create();
    let lab = Lab::builder()
        .vms(names.len())
        .ssh(true)
        .worker(false)
        .bind(&repo.dir)
        .start();
    let mut emu = AzureEmulator::builder();
    for (i, vm) in lab.vms().iter().enumerate() {
        prepare_vm(vm);
        emu = emu.vm(EmulatedVm::lab(names[i], "BOTS-RG", vm));
    }
    let config = repo.dir.join("agent.toml");
    std::fs::write(&config, FAST_AGENT_CONFIG).unwrap();
    Fleet {
        lab,
        emu: emu.start(),
        repo,
        config,
        agent_url: format!("file://{}", profile_dir().join("cryptobot-agent").display()),
    }
}

impl Fleet {
    /// `deploy` of `vm` with the fast agent configuration and short gate.
    fn deploy(&self, vm: &str, ssh: bool, extra: &[&str]) -> Output {
        self.deploy_selected(&["-g", "BOTS-RG", "-n", vm], ssh, extra)
    }

    /// `deploy` of the VMs that `selection` names.
    fn deploy_selected(&self, selection: &[&str], ssh: bool, extra: &[&str]) -> Output {
        let mut c = cryptoctl(&self.emu);
        if ssh {
            c.args(ssh_args(&self.lab));
        }
        c.arg("deploy")
            .args(selection)
            .args(["--gate-timeout", "20s"]);
        if !ssh {
            let agent = profile_dir().join("cryptobot-agent");
            c.arg("--agent-url")
                .arg(&self.agent_url)
                .arg("--agent-binary")
                .arg(&agent);
        }
        c.arg("--repo-url")
            .arg(self.repo.url())
            .arg("--agent-config")
            .arg(&self.config)
            .args(extra)
            .output()
            .expect("cryptoctl deploy")
    }

    /// `cryptoctl` over ssh with `args`.
    fn ctl_ssh(&self, args: &[&str]) -> Output {
        run_ssh(&self.emu, &self.lab, args)
    }

    fn ctl(&self, args: &[&str]) -> Output {
        cryptoctl(&self.emu).args(args).output().expect("cryptoctl")
    }

    fn health(&self, vm: &str) -> Value {
        let out = self.ctl(&["health", "-g", "BOTS-RG", "-n", vm, "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)));
        v[0].clone()
    }
}

fn assert_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
}

fn assert_healthy(f: &Fleet, vm: &str) {
    let row = f.health(vm);
    assert_eq!(row["status"], "HEALTHY", "{row:#}");
    assert_eq!(row["service"], "active", "{row:#}");
    assert_eq!(row["agent_installed"], true, "{row:#}");
}

fn active(vm: &Vm, unit: &str) -> bool {
    vm.run(&["systemctl", "is-active", "-q", unit])
        .status
        .success()
}

#[test]
fn deploy_over_both_transports_gate_rollback_and_rollback_commands() {
    let mut f = fleet(2);
    let (_server, url) = HttpServer::start(&f.lab.vm(1).switch_netns, &profile_dir());
    f.agent_url = url;
    // Bot01 over ssh (the binary is copied), Bot02 over run-command (the VM fetches it over HTTP).
    assert_ok(&f.deploy("Bot01", true, &[]));
    assert_ok(&f.deploy("Bot02", false, &[]));
    for (i, name) in [(1, "Bot01"), (2, "Bot02")] {
        let vm = f.lab.vm(i);
        assert!(active(vm, "faucet_worker.service"), "{name}");
        assert!(active(vm, "cryptobot-agent.service"), "{name}");
        assert_eq!(deployed_commit(vm), f.repo.good);
        // Never root-owned: the checkout and its venv belong to the app user.
        let owners = vm.sh("stat -c %U /home/azureuser/Repositories/cryptobot /home/azureuser/Repositories/cryptobot/.venv /home/azureuser/Repositories/cryptobot/.env");
        assert!(owners.lines().all(|l| l == "azureuser"), "{owners}");
        assert_eq!(vm.sh("stat -c %a /etc/cryptobot/agent.env").trim(), "600");
        assert!(
            vm.sh("ls /etc/systemd/system/faucet_worker.service.d 2>/dev/null || true")
                .trim()
                .is_empty()
        );
        assert_healthy(&f, name);
    }

    // A ref whose worker crashes at start: the gate fails, the deploy rolls back and says so.
    let out = f.deploy("Bot01", true, &["--ref", "broken"]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("health gate failed"), "{}", show(&out));
    assert!(text.contains("rolled back (healthy)"), "{}", show(&out));
    assert_eq!(deployed_commit(f.lab.vm(1)), f.repo.good);
    assert!(
        f.lab
            .vm(1)
            .read_file("/usr/local/bin/cryptobot-agent")
            .is_ok()
    );
    assert_healthy(&f, "Bot01");

    // v2, then `rollback` without --commit goes to the commit before the last deploy.
    assert_ok(&f.deploy("Bot02", false, &["--ref", "v2", "--skip-agent"]));
    assert_eq!(deployed_commit(f.lab.vm(2)), f.repo.v2);
    let out = f.ctl(&[
        "rollback",
        "-g",
        "BOTS-RG",
        "-n",
        "Bot02",
        "--gate-timeout",
        "20s",
    ]);
    assert_ok(&out);
    assert_eq!(deployed_commit(f.lab.vm(2)), f.repo.good);
    // `rollback --commit` to an explicit commit.
    let out = f.ctl(&[
        "rollback",
        "-g",
        "BOTS-RG",
        "-n",
        "Bot02",
        "--gate-timeout",
        "20s",
        "--commit",
        &f.repo.v2,
    ]);
    assert_ok(&out);
    assert_eq!(deployed_commit(f.lab.vm(2)), f.repo.v2);
    assert_healthy(&f, "Bot02");
    // A commit that is not hex is a usage error before anything runs.
    let out = f.ctl(&[
        "rollback", "-g", "BOTS-RG", "-n", "Bot02", "--commit", "HEAD~1",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
}

#[test]
fn canary_dry_run_and_local_config() {
    let f = fleet(1);
    let vm = f.lab.vm(1);
    assert_ok(&f.deploy("Bot01", true, &[]));
    let env = "/home/azureuser/Repositories/cryptobot/.env";
    let secret = "s3cr3t-token-do-not-print";
    vm.sh(&format!(
        "printf 'API_KEY={secret}\\nALERT_WEBHOOK_URL=http://127.0.0.1:9/hook\\nCANARY_PROFILE=old\\n' > {env}; chown azureuser {env}"
    ));

    // Without canary flags .env is left alone. (ssh with --host: no Resource Manager preflight.)
    let out = f.deploy("Bot01", true, &["--skip-agent", "--host", &vm.ip]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("preflight skipped"),
        "{}",
        show(&out)
    );
    assert!(
        vm.sh(&format!("cat {env}"))
            .contains("CANARY_PROFILE=old\n")
    );

    // A profile replaces the canary lines; a reset removes them; the other lines stay.
    assert_ok(&f.deploy(
        "Bot01",
        true,
        &["--skip-agent", "--canary-profile", "fast-1"],
    ));
    let text = vm.sh(&format!("cat {env}"));
    assert!(
        text.contains("CANARY_PROFILE=fast-1\nCANARY_ONLY=true\n"),
        "{text}"
    );
    assert!(!text.contains("CANARY_PROFILE=old"), "{text}");
    assert!(text.contains(&format!("API_KEY={secret}")), "{text}");
    assert_ok(&f.deploy("Bot01", true, &["--skip-agent", "--canary-reset"]));
    let text = vm.sh(&format!("cat {env}"));
    assert!(!text.contains("CANARY"), "{text}");

    // Hostile values never reach the VM.
    for bad in [
        "x'; touch /tmp/pwned; '",
        "a\nCANARY_ONLY=false",
        "$(touch /tmp/pwned)",
    ] {
        let out = f.deploy("Bot01", true, &["--skip-agent", "--canary-profile", bad]);
        assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    }
    assert!(vm.run(&["test", "-e", "/tmp/pwned"]).status.code() == Some(1));
    assert_eq!(vm.sh(&format!("cat {env}")), text);

    // agent.env holds only the alerting variables.
    assert_ok(&f.deploy("Bot01", true, &[]));
    let agent_env = vm.sh("cat /etc/cryptobot/agent.env");
    assert_eq!(agent_env, "ALERT_WEBHOOK_URL=http://127.0.0.1:9/hook\n");

    // --dry-run changes nothing and prints no secret.
    let listing = "find /home/azureuser/Repositories/cryptobot /etc/cryptobot /etc/systemd/system /usr/local/bin /var/lib/cryptobot-deploy -path '*/.venv' -prune -o -type f -print | sort | xargs sha256sum; git -C /home/azureuser/Repositories/cryptobot rev-parse HEAD";
    let before = vm.sh(listing);
    let out = f.deploy(
        "Bot01",
        true,
        &["--dry-run", "--ref", "v2", "--canary-profile", "p2"],
    );
    assert_ok(&out);
    assert_eq!(vm.sh(listing), before);
    let all = show(&out);
    assert!(all.contains("CANARY_PROFILE=p2"), "{all}");
    assert!(all.contains("CRYPTOCTL-EXIT"), "{all}");
    assert!(!all.contains(secret), "{all}");
    let out = f.ctl(&[
        "deploy",
        "-n",
        "Bot01",
        "--dry-run",
        "--skip-agent",
        "--repo-url",
        "https://user:s3cr3t-token-do-not-print@example.com/bot.git",
    ]);
    assert_ok(&out);
    assert!(!show(&out).contains(secret), "{}", show(&out));

    // A locally edited agent.toml survives a re-deploy; --force-config replaces it.
    vm.sh("printf '# edited here\\n[daemon]\\ninterval = \"2s\"\\n' > /etc/cryptobot/agent.toml");
    let out = f.deploy("Bot01", true, &[]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("agent.toml kept"),
        "{}",
        show(&out)
    );
    assert!(
        vm.sh("cat /etc/cryptobot/agent.toml")
            .starts_with("# edited here")
    );
    assert_ok(&f.deploy("Bot01", true, &["--force-config"]));
    assert_eq!(vm.sh("cat /etc/cryptobot/agent.toml"), FAST_AGENT_CONFIG);
    // The previous agent binary is kept next to the new one.
    assert!(
        vm.read_file("/usr/local/bin/cryptobot-agent.previous")
            .is_ok()
    );
}

/// Where `needle` first appears in `text` (a panic naming both when it does not).
fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

#[test]
fn several_vms_go_in_order_and_stop_at_the_first_failure_unless_max_parallel() {
    // The emulator lists Bot03 first; the deploy order is resource group, then name.
    let f = fleet_named(&["Bot03", "Bot01", "Bot02"]);
    let (bot01, bot02, bot03) = (f.lab.vm(2), f.lab.vm(3), f.lab.vm(1));
    f.emu.set_vm("Bot02", |v| v.power = "deallocated".into());
    let bot02_before = bot02.sh(FOOTPRINT);
    let bot03_before = bot03.sh(FOOTPRINT);

    // Default: one at a time; Bot02's preflight fails, so Bot03 is never started.
    let out = f.deploy_selected(&["-g", "BOTS-RG"], true, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("deploy order (resource group, then name): Bot01, Bot02, Bot03; one at a time, stopping at the first failure"),
        "{}",
        show(&out)
    );
    assert!(position(&text, "== deploy Bot01") < position(&text, "== deploy Bot02"));
    assert!(!text.contains("== deploy Bot03"), "{}", show(&out));
    let summary = &text[position(&text, "== summary (deploy order)")..];
    assert!(
        summary.contains(
            "  Bot01 (BOTS-RG): ok\n  Bot02 (BOTS-RG): FAILED: preflight: VM is not running: VM deallocated\n  Bot03 (BOTS-RG): skipped: not attempted, nothing changed on it (deploy stopped after Bot02 failed)\n"
        ),
        "{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 ok, 1 failed, 1 not attempted"),
        "{}",
        show(&out)
    );
    assert_eq!(deployed_commit(bot01), f.repo.good);
    assert!(active(bot01, "cryptobot-agent.service"));
    assert_eq!(bot02.sh(FOOTPRINT), bot02_before, "Bot02 was changed");
    assert_eq!(bot03.sh(FOOTPRINT), bot03_before, "Bot03 was changed");
    assert!(
        bot03
            .run(&["test", "-e", "/usr/local/bin/cryptobot-agent"])
            .status
            .code()
            == Some(1)
    );

    // --max-parallel 3: every VM is attempted; the healthy ones succeed, the exit code still
    // says that one failed, and the summary keeps the same order.
    let out = f.deploy_selected(&["-g", "BOTS-RG"], true, &["--max-parallel", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "Bot01, Bot02, Bot03; up to 3 at once, starting no further VM after a failure"
        ),
        "{}",
        show(&out)
    );
    for vm in ["Bot01", "Bot02", "Bot03"] {
        assert!(
            text.contains(&format!("== deploy {vm} (BOTS-RG)")),
            "{}",
            show(&out)
        );
    }
    let summary = &text[position(&text, "== summary (deploy order)")..];
    assert!(
        summary.contains(
            "  Bot01 (BOTS-RG): ok\n  Bot02 (BOTS-RG): FAILED: preflight: VM is not running: VM deallocated\n  Bot03 (BOTS-RG): ok\n"
        ),
        "{}",
        show(&out)
    );
    for (vm, name) in [(bot01, "Bot01"), (bot03, "Bot03")] {
        assert_eq!(deployed_commit(vm), f.repo.good, "{name}");
        assert!(active(vm, "faucet_worker.service"), "{name}");
        assert!(active(vm, "cryptobot-agent.service"), "{name}");
    }
    assert_eq!(bot02.sh(FOOTPRINT), bot02_before, "Bot02 was changed");
}

fn host_sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn vm_sha256(vm: &Vm, path: &str) -> String {
    vm.sh(&format!("sha256sum < {path} | cut -d' ' -f1"))
        .trim()
        .to_owned()
}

#[test]
fn rollback_agent_puts_the_previous_binary_back_gated_and_undoable() {
    const AGENT: &str = "/usr/local/bin/cryptobot-agent";
    const PREVIOUS: &str = "/usr/local/bin/cryptobot-agent.previous";
    let f = fleet(1);
    let vm = f.lab.vm(1);
    // Build A is the workspace's agent; build B the same program with bytes appended (it runs the
    // same, but its checksum differs).
    let a = profile_dir().join("cryptobot-agent");
    let b = f.repo.dir.join("cryptobot-agent-b");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend_from_slice(b"\ncryptobot-agent build B\n");
    std::fs::write(&b, bytes).unwrap();
    let (sha_a, sha_b) = (host_sha256(&a), host_sha256(&b));
    assert_ne!(sha_a, sha_b);

    assert_ok(&f.deploy("Bot01", true, &[]));
    let b_arg = b.display().to_string();
    assert_ok(&f.deploy("Bot01", true, &["--ref", "v2", "--agent-binary", &b_arg]));
    assert_eq!(deployed_commit(vm), f.repo.v2);
    assert_eq!(vm_sha256(vm, AGENT), sha_b);
    assert_eq!(vm_sha256(vm, PREVIOUS), sha_a);

    // rollback --agent (over run-command): the bot to the commit before the last deploy, the agent
    // to .previous; the replaced binary becomes .previous.
    let rollback = |extra: &[&str]| {
        let mut args = vec![
            "rollback",
            "-g",
            "BOTS-RG",
            "-n",
            "Bot01",
            "--agent",
            "--gate-timeout",
            "20s",
        ];
        args.extend_from_slice(extra);
        f.ctl(&args)
    };
    let out = rollback(&[]);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "agent sha256 {} (previous {})",
            &sha_a[..12],
            &sha_b[..12]
        )),
        "{}",
        show(&out)
    );
    assert_eq!(deployed_commit(vm), f.repo.good);
    assert_eq!(vm_sha256(vm, AGENT), sha_a);
    assert_eq!(vm_sha256(vm, PREVIOUS), sha_b);
    assert!(
        vm.sh("cat /var/lib/cryptobot-deploy/history")
            .contains(&format!("rollback-agent {sha_a} {sha_b}\n")),
        "{}",
        vm.sh("cat /var/lib/cryptobot-deploy/history")
    );
    assert_healthy(&f, "Bot01");

    // Again, agent only: undone; the bot stays where it is. Over ssh this time.
    let out = f.ctl_ssh(&[
        "rollback",
        "-g",
        "BOTS-RG",
        "-n",
        "Bot01",
        "--agent",
        "--skip-app",
        "--gate-timeout",
        "20s",
    ]);
    assert_ok(&out);
    assert_eq!(vm_sha256(vm, AGENT), sha_b);
    assert_eq!(vm_sha256(vm, PREVIOUS), sha_a);
    assert_eq!(deployed_commit(vm), f.repo.good);
    assert_healthy(&f, "Bot01");

    // The same health gate: a .previous that does not run fails it, and says so.
    vm.sh(&format!(
        "printf '#!/bin/sh\\nexit 1\\n' > {PREVIOUS}; chmod 755 {PREVIOUS}"
    ));
    let broken = vm_sha256(vm, PREVIOUS);
    let out = f.ctl(&[
        "rollback",
        "-g",
        "BOTS-RG",
        "-n",
        "Bot01",
        "--agent",
        "--skip-app",
        "--gate-timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("health gate failed after 5s"),
        "{}",
        show(&out)
    );
    assert_eq!(vm_sha256(vm, AGENT), broken);
    assert_eq!(vm_sha256(vm, PREVIOUS), sha_b);
    // ... and is undone by running it again.
    assert_ok(&rollback(&["--skip-app"]));
    assert_eq!(vm_sha256(vm, AGENT), sha_b);
    assert_healthy(&f, "Bot01");

    // Without a .previous nothing changes, the bot included.
    vm.sh(&format!("rm -f {PREVIOUS}"));
    let before = vm.sh(FOOTPRINT);
    let out = rollback(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no previous agent binary"),
        "{}",
        show(&out)
    );
    assert_eq!(vm.sh(FOOTPRINT), before);
}
