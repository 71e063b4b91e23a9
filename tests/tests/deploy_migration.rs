//! `cryptoctl deploy` onto VMs that the old scripts set up: the checkout and its venv written by
//! root (`azure_deploy.sh` ran git and pip as root through run-command), the old worker unit
//! (output appended to `logs/production_run.log`, `WatchdogSec=300` that the bot never pings),
//! `health_monitor.service` and `health_endpoint.service` enabled and failing (`%h` is /root in a
//! system unit), the old monitor's `logs/restart_backoff.json` and a `.env` with secrets. Over ssh
//! and over run-command the deploy migrates them and says so; a failed health gate puts the old
//! units and state back.

use cryptobot_tests::{
    Lab, Vm,
    bot::{BotRepo, FAST_AGENT_CONFIG, deployed_commit, prepare_vm},
    ctl::show,
    deploy::DeployFleet,
    dist_dir,
    http_server::HttpServer,
};
use serde_json::Value;

const APP: &str = "/home/azureuser/Repositories/cryptobot";

/// The units `deploy/deploy.sh --install-service` copied (as in the original repository).
const OLD_WORKER: &str = "[Unit]\nDescription=Faucet Worker Automation Service\nAfter=network.target\n\
StartLimitIntervalSec=300\nStartLimitBurst=5\n\n[Service]\nType=simple\nUser=azureuser\n\
WorkingDirectory=/home/azureuser/Repositories/cryptobot\n\
EnvironmentFile=/home/azureuser/Repositories/cryptobot/.env\nEnvironment=HEADLESS=true\n\
ExecStart=/home/azureuser/Repositories/cryptobot/.venv/bin/python main.py\nRestart=always\n\
RestartSec=10\nWatchdogSec=300\nMemoryMax=4G\nCPUQuota=200%\n\
StandardOutput=append:/home/azureuser/Repositories/cryptobot/logs/production_run.log\n\
StandardError=append:/home/azureuser/Repositories/cryptobot/logs/production_run.log\n\
SyslogIdentifier=faucet_worker\n\n[Install]\nWantedBy=multi-user.target\n";

fn old_health_unit(what: &str, exec: &str, restart_sec: u32) -> String {
    format!(
        "[Unit]\nDescription=Cryptobot {what}\nAfter=network.target\nWants=faucet_worker.service\n\n\
         [Service]\nType=simple\nUser=azureuser\nWorkingDirectory=%h/Repositories/cryptobot\n\
         EnvironmentFile=%h/Repositories/cryptobot/.env\n\
         ExecStart=%h/Repositories/cryptobot/.venv/bin/python -m {exec}\nRestart=always\n\
         RestartSec={restart_sec}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

const OLD_BACKOFF: &str = "{\n  \"restart_count\": 7,\n  \"last_restart_time\": \"2026-01-24T12:00:00.123456\",\n  \"backoff_seconds\": 80\n}";

const ENV: &str = "FAUCET_PASSWORD=hunter2-secret\nTWOCAPTCHA_API_KEY=0123456789abcdef\n\
APPLICATIONINSIGHTS_CONNECTION_STRING=InstrumentationKey=00000000-0000-4000-8000-000000000000\n";

/// Leaves `vm` the way the old scripts did, with `backoff` as `logs/restart_backoff.json`.
fn old_install(vm: &Vm, repo: &BotRepo, backoff: &str) {
    prepare_vm(vm);
    vm.sh(&format!(
        "set -e; mkdir -p /home/azureuser/Repositories; git clone -q {url} {APP}; cd {APP}; \
         git fetch -q; git checkout -q master; git pull -q origin master; python3 -m venv .venv; \
         mkdir -p logs; echo 'old output' > logs/production_run.log",
        url = repo.url()
    ));
    vm.write_file(&format!("{APP}/logs/restart_backoff.json"), backoff);
    vm.write_file(&format!("{APP}/.env"), ENV);
    vm.write_file("/etc/systemd/system/faucet_worker.service", OLD_WORKER);
    vm.write_file(
        "/etc/systemd/system/health_monitor.service",
        old_health_unit(
            "Health Monitor Daemon",
            "core.health_monitor --daemon --alert --restart --interval 60",
            30,
        ),
    );
    vm.write_file(
        "/etc/systemd/system/health_endpoint.service",
        old_health_unit(
            "Health Endpoint HTTP Server",
            "core.health_endpoint --port 8080",
            10,
        ),
    );
    vm.sh("systemctl daemon-reload; systemctl restart faucet_worker; \
         systemctl enable -q health_monitor health_endpoint; \
         systemctl start health_monitor health_endpoint || true");
    assert_eq!(
        vm.sh(&format!("stat -c %U {APP}/.git/FETCH_HEAD")).trim(),
        "root"
    );
}

fn sha(vm: &Vm, path: &str) -> String {
    vm.sh(&format!("sha256sum {path}"))
}

fn agent_backoff(vm: &Vm) -> Option<Value> {
    vm.read_file("/var/lib/cryptobot-agent/restart_backoff.json")
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("the agent's backoff state is JSON"))
}

fn enabled(vm: &Vm, unit: &str) -> String {
    let out = vm.run(&["systemctl", "is-enabled", unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn deploy_migrates_old_installs_over_both_transports_and_restores_them_on_a_failed_gate() {
    let f = DeployFleet::start(
        Lab::builder(),
        &["Bot01", "Bot02", "Bot03"],
        FAST_AGENT_CONFIG,
    );
    let (by_ssh, by_run_command, broken) = (f.vm(1), f.vm(2), f.vm(3));
    let repo = &f.repo;
    old_install(by_ssh, repo, OLD_BACKOFF);
    old_install(by_run_command, repo, "{\"restart_count\": \"many\"");
    old_install(broken, repo, OLD_BACKOFF);
    // Links that point out of the checkout: never followed by the ownership fix or the import.
    by_ssh.sh(&format!("ln -s /etc/hostname {APP}/hostlink"));
    broken.sh(&format!(
        "mv {APP}/logs /var/log/oldbot && ln -s /var/log/oldbot {APP}/logs"
    ));
    let (_server, url) = HttpServer::start(&by_ssh.switch_netns, &dist_dir());
    let deploy = |vm: &str, ssh: bool, extra: &[&str]| {
        let mut args = vec!["-n", vm, "--gate-timeout", "30s"];
        if !ssh {
            args.extend(["--agent-url", url.as_str()]);
        }
        args.extend_from_slice(extra);
        f.deploy(ssh, &args)
    };
    let env_before = sha(by_ssh, &format!("{APP}/.env"));

    // Over ssh: everything migrated, and said.
    let out = deploy("Bot01", true, &[]);
    let said = show(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "migrated from the old scripts: ownership,health_monitor.service,\
             health_endpoint.service,faucet_worker.service,restart_backoff"
        ),
        "{said}"
    );
    let vm = by_ssh;
    for old in ["health_monitor.service", "health_endpoint.service"] {
        assert_ne!(enabled(vm, old), "enabled", "{old}");
        assert_ne!(vm.unit_property(old, "ActiveState"), "active", "{old}");
        assert!(
            vm.read_file(&format!("/var/lib/cryptobot-deploy/old-units/{old}"))
                .is_ok()
        );
    }
    assert_eq!(
        vm.sh(&format!(
            "find {APP} ! -user azureuser -o ! -group azureuser | wc -l"
        ))
        .trim(),
        "0"
    );
    assert_eq!(
        sha(vm, &format!("{APP}/.env")),
        env_before,
        ".env was changed"
    );
    assert_eq!(
        vm.sh("stat -c %U /etc/hostname").trim(),
        "root",
        "a link was followed"
    );
    assert_eq!(
        vm.unit_property("faucet_worker.service", "StandardOutput"),
        "journal"
    );
    assert_eq!(
        vm.unit_property("faucet_worker.service", "WatchdogUSec"),
        "0"
    );
    assert_eq!(agent_backoff(vm).unwrap()["restart_count"], 7);
    let agent_env = String::from_utf8(vm.read_file("/etc/cryptobot/agent.env").unwrap()).unwrap();
    assert!(!agent_env.contains("hunter2") && !agent_env.contains("TWOCAPTCHA"));
    let history =
        String::from_utf8(vm.read_file("/var/lib/cryptobot-deploy/history").unwrap()).unwrap();
    assert!(history.contains(" migrate restart_backoff\n"), "{history}");

    // A later deploy never imports the old file again, and has nothing left to migrate.
    vm.sh(&format!(
        "sed -i 's/\"restart_count\": 7/\"restart_count\": 99/' {APP}/logs/restart_backoff.json"
    ));
    let out = deploy("Bot01", true, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !show(&out).contains("migrated from the old scripts"),
        "{}",
        show(&out)
    );
    assert_ne!(agent_backoff(vm).unwrap()["restart_count"], 99);

    // Over run-command, with a garbage state file: reported and left alone, the agent starts fresh.
    let garbage = sha(by_run_command, &format!("{APP}/logs/restart_backoff.json"));
    let out = deploy("Bot02", false, &[]);
    let said = show(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("old restart_backoff.json invalid"), "{said}");
    assert!(said.contains("health_monitor.service"), "{said}");
    assert_eq!(
        sha(by_run_command, &format!("{APP}/logs/restart_backoff.json")),
        garbage
    );
    assert!(agent_backoff(by_run_command).is_none_or(|b| b["restart_count"] == 0));
    assert_eq!(deployed_commit(by_run_command), repo.good);

    // A failed gate on a migrated VM: the old units and state are back, so it stays monitored.
    let out = deploy("Bot03", true, &["--ref", "broken"]);
    let said = show(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("old units restored"), "{said}");
    for old in ["health_monitor.service", "health_endpoint.service"] {
        assert_eq!(enabled(broken, old), "enabled", "{old}");
    }
    let unit = broken
        .read_file("/etc/systemd/system/faucet_worker.service")
        .unwrap();
    assert_eq!(String::from_utf8(unit).unwrap(), OLD_WORKER);
    let old_state = broken
        .read_file("/var/log/oldbot/restart_backoff.json")
        .unwrap();
    assert_eq!(String::from_utf8(old_state).unwrap(), OLD_BACKOFF);
    assert!(said.contains("old restart_backoff.json skipped"), "{said}");
    assert_eq!(
        broken
            .sh("stat -c %U /var/log/oldbot /var/log/oldbot/restart_backoff.json")
            .trim(),
        "root\nroot",
        "the logs link was followed"
    );
}
