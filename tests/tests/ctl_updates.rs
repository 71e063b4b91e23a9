//! `cryptoctl health --check-updates` on a deployed lab VM: nothing to say while the checkout is at
//! the remote's tip; `Code is behind remote repository (1 commit)` once the remote moved on (the
//! checkout itself untouched); UNKNOWN with the reason when the remote cannot be reached. Over
//! ssh and over run-command.

use cryptobot_tests::{
    Lab,
    bot::{FAST_AGENT_CONFIG, deployed_commit},
    ctl::show,
    deploy::{DeployFleet, GROUP},
};
use serde_json::Value;

#[test]
fn check_updates_reports_a_checkout_behind_its_remote() {
    let f = DeployFleet::start(Lab::builder(), &["Bot01"], FAST_AGENT_CONFIG);
    let (vm, repo) = (f.vm(1), &f.repo);
    let out = f.deploy(true, &["-n", "Bot01", "--gate-timeout", "30s"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let health = |ssh: bool, updates: bool| -> Value {
        let mut c = f.cryptoctl(ssh);
        c.args(["health", "-g", GROUP, "-o", "json"]);
        if updates {
            c.arg("--check-updates");
        }
        let out = c.output().unwrap();
        let rows: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)));
        rows[0].clone()
    };
    for ssh in [true, false] {
        let row = health(ssh, true);
        assert_eq!(row["status"], "HEALTHY", "{row:#}");
        assert_eq!(row["alerts"], Value::Array(vec![]), "{row:#}");
    }

    repo.advance_master();
    // Off by default: the remote is not asked.
    assert_eq!(health(true, false)["status"], "HEALTHY");
    for ssh in [true, false] {
        let row = health(ssh, true);
        assert_eq!(row["status"], "WARNING", "{row:#}");
        assert_eq!(
            row["alerts"],
            serde_json::json!(["Code is behind remote repository (1 commit)"]),
            "{row:#}"
        );
    }
    assert_eq!(deployed_commit(vm), repo.good, "the working tree moved");

    // A remote that cannot be reached: UNKNOWN with the reason, not a hang and not HEALTHY.
    vm.sh(
        "runuser -u azureuser -- git -C /home/azureuser/Repositories/cryptobot \
         remote set-url origin /nonexistent/cryptobot.git",
    );
    let row = health(true, true);
    assert_eq!(row["status"], "UNKNOWN", "{row:#}");
    let alert = row["alerts"][0].as_str().unwrap_or_default();
    assert!(
        alert.starts_with("Update check failed: git fetch of master failed or timed out: "),
        "{row:#}"
    );
}
