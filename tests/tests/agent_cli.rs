//! Command-line behaviour that needs no VM: configuration errors and usage errors use exit codes
//! outside 0-3 and say what is wrong.

use std::process::Command;

use cryptobot_tests::{agent::deploy_dir, agent_bin};

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(agent_bin()).args(args).output().unwrap()
}

#[test]
fn bad_config_is_a_clear_error_outside_the_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[disk]\nwarning_percent = 101\n", "disk.warning_percent"),
        (
            "[disk]\nforecast_floor_percent = 90\n",
            "disk.forecast_floor_percent",
        ),
        (
            "[disk]\nforecast_window = \"10s\"\n",
            "disk.forecast_window",
        ),
        ("[disk]\nwarn = 1\n", "warn"),
        ("[heartbeat]\nstale_after = \"soon\"\n", "stale_after"),
        ("this is not toml", "agent.toml"),
    ];
    for (text, named) in cases {
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        for args in [vec!["check"], vec!["config", "check"]] {
            let mut a = vec!["--config", path.to_str().unwrap()];
            a.extend(args);
            let out = agent(&a);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{text}: {err}");
            assert!(err.contains(named), "{text}: {err}");
            assert!(
                out.stdout.is_empty(),
                "nothing on stdout for a config error"
            );
        }
    }
}

#[test]
fn missing_explicit_config_is_an_error_but_the_default_may_be_absent() {
    let out = agent(&["--config", "/nonexistent/agent.toml", "check"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/agent.toml"));
}

#[test]
fn config_check_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "[worker]\nunit = \"other.service\"\n").unwrap();
    let out = agent(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unit = \"other.service\""), "{text}");
    assert!(text.contains("stale_after = \"5m\""), "{text}");
    // valid, but the shipped restart helper (polkit 0.105's way) restarts faucet_worker.service
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("restarts faucet_worker.service only, not other.service"),
        "{said}"
    );
    // the shipped configuration gets no such note
    let out = agent(&[
        "config",
        "check",
        deploy_dir().join("agent.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note:"));
}

#[test]
fn usage_errors_are_not_health_statuses() {
    let out = agent(&["check", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(64));
    let out = agent(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(agent(&["--help"]).status.code(), Some(0));
    assert_eq!(agent(&["--version"]).status.code(), Some(0));
}
