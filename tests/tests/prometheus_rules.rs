//! The Prometheus files in `deploy/prometheus/` under Debian's `promtool` (package `prometheus`,
//! installed by `tests/setup.sh`):
//!
//! - `cryptobot.rules.yml` passes `promtool check rules` (PromQL syntax, templates, duplicates);
//! - `prometheus.example.yml` passes `promtool check config`, which also loads the rule file it
//!   names; it runs on a copy in a temporary directory whose bearer-token file exists, since
//!   promtool insists that the `credentials_file` of the example is there;
//! - the rules' unit tests `cryptobot.rules.test.yml` pass `promtool test rules`: every alert is
//!   shown firing (with its labels and annotations) and not firing (before its `for:` elapses, on a
//!   healthy VM, on a paused one).
//!
//! - every PromQL expression of the Prometheus dashboard `deploy/grafana/cryptobot-prometheus.json`
//!   (panels and variables, with the variables substituted) passes `promtool check rules` as a
//!   recording rule, so it is valid PromQL.
//!
//! That every metric the rules and the dashboard name is one the agent exports is checked against
//! a running agent in `grafana_dashboards.rs`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cryptobot_tests::require_tool;

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// Runs promtool with `args` in `dir` and asserts that it succeeds, showing its output if not.
fn promtool(dir: &Path, args: &[&str]) -> Output {
    require_tool("promtool", "prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn promtool_checks_the_alert_rules() {
    let out = promtool(
        &prometheus_dir(),
        &["check", "rules", "cryptobot.rules.yml"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");
}

#[test]
fn promtool_checks_the_example_configuration_with_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("cryptobot-agent.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = std::fs::read_to_string(prometheus_dir().join("prometheus.example.yml")).unwrap();
    let shipped_token = "credentials_file: /etc/prometheus/cryptobot-agent.token";
    assert!(config.contains(shipped_token), "{config}");
    let config = config.replace(
        shipped_token,
        &format!("credentials_file: {}", token.display()),
    );
    std::fs::write(dir.path().join("prometheus.example.yml"), config).unwrap();
    std::fs::copy(
        prometheus_dir().join("cryptobot.rules.yml"),
        dir.path().join("cryptobot.rules.yml"),
    )
    .unwrap();
    let out = promtool(dir.path(), &["check", "config", "prometheus.example.yml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The configuration is valid and the rule file it names was found and checked.
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");

    // Without its rule file next to it, the same configuration is refused: the check above really
    // loaded the rules.
    std::fs::remove_file(dir.path().join("cryptobot.rules.yml")).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config", "prometheus.example.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let out = promtool(
        &prometheus_dir(),
        &["test", "rules", "cryptobot.rules.test.yml"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_rule_tests_cover_every_alert_firing_and_not_firing() {
    let rules = std::fs::read_to_string(prometheus_dir().join("cryptobot.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(prometheus_dir().join("cryptobot.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    // Each alert test names its alert in one `alertname:` line; an empty `exp_alerts: []` is a
    // not-firing case, a list of `exp_labels` a firing one.
    let mut cases: Vec<(String, bool)> = Vec::new();
    let lines: Vec<&str> = tests.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.split("alertname: ").nth(1) {
            let name = rest
                .trim_end_matches(|c: char| c == '}' || c.is_whitespace())
                .split(',')
                .next()
                .unwrap()
                .trim()
                .to_owned();
            let empty = line.contains("exp_alerts: []")
                || lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim() == "exp_alerts: []");
            cases.push((name, !empty));
        }
    }
    for alert in alerts {
        for firing in [true, false] {
            assert!(
                cases.iter().any(|(n, f)| n == alert && *f == firing),
                "no test shows {alert} {}",
                if firing { "firing" } else { "not firing" }
            );
        }
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/cryptobot-prometheus.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let targets = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().expect("a PromQL expr"));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| v["query"]["query"].as_str().expect("a variable query"));
    let rules: Vec<serde_json::Value> = targets
        .chain(variables)
        .enumerate()
        .map(|(i, e)| {
            // A variable's label_values(SELECTOR, LABEL) is Grafana's: check its selector.
            let e = e
                .strip_prefix("label_values(")
                .map_or(e, |args| args.rsplit_once(',').expect("selector, label").0);
            let e = e.replace("$job", "cryptobot").replace("$instance", ".*");
            serde_json::json!({"record": format!("dashboard:query{i}"), "expr": e})
        })
        .collect();
    assert!(rules.len() >= 15, "{}", rules.len());
    let dir = tempfile::tempdir().unwrap();
    // JSON is YAML.
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(dir.path().join("dashboard.rules.yml"), file.to_string()).unwrap();
    let out = promtool(dir.path(), &["check", "rules", "dashboard.rules.yml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{text}"
    );
}
