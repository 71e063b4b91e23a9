//! The Grafana dashboards in `deploy/grafana/` and the alert rules in `deploy/prometheus/`:
//!
//! - **Schema.** Each dashboard is valid against Grafana's published schema: the npm package
//!   `@grafana/schema` 13.2.3 (Grafana's schema library, whose TypeScript types are generated from
//!   its CUE kinds), turned into JSON Schema (draft 7, no property outside the schema allowed) by
//!   `ts-json-schema-generator` 2.4.0 and checked with Python's `jsonschema`. The whole dashboard
//!   is checked against the `Dashboard` kind; each panel's `options` and
//!   `fieldConfig.defaults.custom` against its panel plugin's `Options` and `FieldConfig`
//!   (`table`, `state-timeline`, `timeseries`, `stat`); each Azure Monitor query against
//!   `AzureMonitorQuery`. A dashboard with a misspelt property is shown refused. `tests/setup.sh`
//!   installs the packages in `/var/cache/cryptobot-lab/grafana-schema` (`GRAFANA_SCHEMA_DIR`
//!   overrides it). Every data source reference is the dashboard's `${datasource}` variable, so
//!   the dashboards import into any Grafana.
//! - **Prometheus metric names.** Every PromQL expression of the Prometheus dashboard (panels and
//!   variables) and of the alert rules names only metrics a running agent exports: the names
//!   (identifiers `cryptobot_[a-z_]+`, and `up`) are compared with the metric families in the
//!   `# TYPE` lines of `/metrics` of the agent running in a lab VM (`up` is Prometheus' own). A
//!   copy of the rules with one metric misspelt still passes `promtool check rules`, and this check
//!   names the misspelt metric. (That they are valid PromQL is checked in `prometheus_rules.rs`.)
//! - **Application Insights metric names.** Every Logs (KQL) query of the Azure Monitor dashboard
//!   names only the `health.*` metrics the agent's telemetry sender uses
//!   (`cryptobot_agent::alerts::appinsights::METRIC_NAMES`), and only the role name the agent tags
//!   its telemetry with.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use cryptobot_tests::{Lab, agent::start_agent};
use serde_json::{Value, json};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn dashboard(name: &str) -> Value {
    let path = deploy().join("grafana").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

const PROMETHEUS_DASHBOARD: &str = "cryptobot-prometheus.json";
const AZURE_DASHBOARD: &str = "cryptobot-azure-monitor.json";

/// Every panel, rows' panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        all.push(p);
        if let Some(inner) = p["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

/// The queries of every panel and the query objects of every query variable.
fn queries(dashboard: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = panels(dashboard)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .collect();
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if v["type"] == "query" {
            all.push(&v["query"]);
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Schema

fn schema_dir() -> PathBuf {
    let dir = std::env::var_os("GRAFANA_SCHEMA_DIR").map_or_else(
        || PathBuf::from("/var/cache/cryptobot-lab/grafana-schema"),
        PathBuf::from,
    );
    let package = dir.join("node_modules/@grafana/schema/package.json");
    let version = std::fs::read_to_string(&package).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: install the Grafana schema with tests/setup.sh",
            package.display()
        )
    });
    assert!(
        version.contains("\"version\": \"13.2.3\""),
        "@grafana/schema in {} is not 13.2.3: run tests/setup.sh",
        dir.display()
    );
    dir
}

/// The schemas used: (kind, type). The declaration file under `@grafana/schema/dist/types/` is
/// the dashboard kind's, the Azure Monitor data query's, or the panel plugin's `panelcfg`.
const SCHEMAS: &[(&str, &str)] = &[
    ("dashboard", "Dashboard"),
    ("azuremonitor", "AzureMonitorQuery"),
    ("table", "Options"),
    ("table", "FieldConfig"),
    ("statetimeline", "Options"),
    ("statetimeline", "FieldConfig"),
    ("timeseries", "Options"),
    ("timeseries", "FieldConfig"),
    ("stat", "Options"),
];

fn declarations(kind: &str) -> String {
    match kind {
        "dashboard" => "raw/dashboard/x/types.gen.d.ts".into(),
        "azuremonitor" => "raw/composable/azuremonitor/dataquery/x/types.gen.d.ts".into(),
        panel => format!("raw/composable/{panel}/panelcfg/x/types.gen.d.ts"),
    }
}

/// Generates every schema of [`SCHEMAS`] into `out` (in parallel; about 2 s each).
fn generate_schemas(out: &Path) {
    let dir = schema_dir();
    let generator =
        dir.join("node_modules/ts-json-schema-generator/bin/ts-json-schema-generator.js");
    let types = dir.join("node_modules/@grafana/schema/dist/types");
    let children: Vec<_> = SCHEMAS
        .iter()
        .map(|(kind, ty)| {
            let child = Command::new("node")
                .arg(&generator)
                .arg("--path")
                .arg(types.join(declarations(kind)))
                .args(["--type", ty, "--expose", "none", "--no-type-check", "-o"])
                .arg(out.join(format!("{kind}-{ty}.json")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("node is not installed: tests/setup.sh installs it");
            (format!("{kind} {ty}"), child)
        })
        .collect();
    for (name, child) in children {
        let done = child.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "cannot generate the {name} schema: {}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
    }
}

/// Checks each instance against its schema with Python's jsonschema (the schema's own draft);
/// returns one line per error, `what: path: message`.
const VALIDATE: &str = r#"
import json, sys
import jsonschema
checks = json.load(open(sys.argv[1]))
schemas = {}
errors = 0
for c in checks:
    if c["schema"] not in schemas:
        s = json.load(open(c["schema"]))
        cls = jsonschema.validators.validator_for(s)
        cls.check_schema(s)
        schemas[c["schema"]] = cls(s)
    for e in schemas[c["schema"]].iter_errors(c["instance"]):
        errors += 1
        path = "/".join(str(p) for p in e.absolute_path)
        # For anyOf (a panel or a row), say what each alternative found wrong.
        why = sorted({s.message[:200] for s in e.context}) or [e.message[:300]]
        print(f"{c['what']}: /{path}: {' | '.join(why)}")
print(f"checked {len(checks)} documents, {errors} errors", file=sys.stderr)
"#;

fn validate(schemas: &Path, checks: &[Value]) -> Vec<String> {
    let manifest = schemas.join("checks.json");
    std::fs::write(&manifest, serde_json::to_vec(checks).unwrap()).unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-c", VALIDATE])
        .arg(&manifest)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the validator failed (pip install jsonschema; tests/setup.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The documents of one dashboard to check, each with its schema.
fn checks_of(schemas: &Path, name: &str, d: &Value) -> Vec<Value> {
    let check = |schema: &str, instance: &Value, what: String| json!({"schema": schemas.join(format!("{schema}.json")), "instance": instance, "what": what});
    let mut checks = vec![check("dashboard-Dashboard", d, name.to_owned())];
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("");
        let plugin = match p["type"].as_str().expect("panel type") {
            "state-timeline" => "statetimeline",
            "row" => continue,
            other => other,
        };
        assert!(
            SCHEMAS.iter().any(|(kind, _)| *kind == plugin),
            "{name}: panel {title:?} is a {plugin}, for which no schema is set up"
        );
        let options = &p["options"];
        checks.push(check(
            &format!("{plugin}-Options"),
            options,
            format!("{name}: {title} options"),
        ));
        if SCHEMAS.contains(&(plugin, "FieldConfig")) {
            let custom = &p["fieldConfig"]["defaults"]["custom"];
            let what = format!("{name}: {title} fieldConfig.defaults.custom");
            checks.push(check(&format!("{plugin}-FieldConfig"), custom, what));
        }
    }
    for q in queries(d) {
        if q["datasource"]["type"] == "grafana-azure-monitor-datasource"
            || q.get("azureLogAnalytics").is_some()
        {
            let what = format!("{name}: query {}", q["refId"]);
            checks.push(check("azuremonitor-AzureMonitorQuery", q, what));
        }
    }
    checks
}

#[test]
fn dashboards_are_valid_against_grafanas_schema() {
    let schemas = tempfile::tempdir().unwrap();
    generate_schemas(schemas.path());
    let mut checks = Vec::new();
    for name in [PROMETHEUS_DASHBOARD, AZURE_DASHBOARD] {
        checks.extend(checks_of(schemas.path(), name, &dashboard(name)));
    }
    assert!(checks.len() > 20, "{}", checks.len());
    let errors = validate(schemas.path(), &checks);
    assert!(
        errors.is_empty(),
        "invalid against @grafana/schema:\n{}",
        errors.join("\n")
    );

    // The checks are strict: a misspelt panel property, a misspelt state-timeline option and a
    // result format Azure Monitor does not have are each refused.
    let mut broken = dashboard(PROMETHEUS_DASHBOARD);
    broken["panels"][0]["titel"] = json!("Fleet");
    broken["panels"][1]["options"]["rowHight"] = json!(0.9);
    let mut azure = dashboard(AZURE_DASHBOARD);
    azure["panels"][0]["targets"][0]["azureLogAnalytics"]["resultFormat"] = json!("timeseries");
    let mut checks = checks_of(schemas.path(), "broken", &broken);
    checks.extend(checks_of(schemas.path(), "broken-azure", &azure));
    let errors = validate(schemas.path(), &checks).join("\n");
    for needle in [
        "'titel' was unexpected",
        "'rowHight' was unexpected",
        "'timeseries' is not one of",
    ] {
        assert!(errors.contains(needle), "{needle} not reported:\n{errors}");
    }
}

#[test]
fn dashboards_choose_their_data_source_by_variable() {
    for (name, plugin) in [
        (PROMETHEUS_DASHBOARD, "prometheus"),
        (AZURE_DASHBOARD, "grafana-azure-monitor-datasource"),
    ] {
        let d = dashboard(name);
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == plugin),
            "{name}: no datasource variable of {plugin}"
        );
        assert!(
            vars.iter()
                .any(|v| v["name"] == "instance" && v["multi"] == true),
            "{name}"
        );
        let targets = panels(&d)
            .into_iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten());
        let refs = panels(&d)
            .into_iter()
            .map(|p| &p["datasource"])
            .chain(targets.map(|q| &q["datasource"]))
            .chain(
                vars.iter()
                    .filter(|v| v["type"] == "query")
                    .map(|v| &v["datasource"]),
            );
        for r in refs {
            assert_eq!(
                r,
                &json!({"type": plugin, "uid": "${datasource}"}),
                "{name}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metric names

/// The metric names a PromQL expression uses: identifiers `cryptobot_[a-z_]+` and `up` outside
/// string literals, label matchers, comments and Grafana `$variables`.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let (mut i, mut braces) = (0, 0usize);
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' => (braces, i) = (braces + 1, i + 1),
            '}' => (braces, i) = (braces.saturating_sub(1), i + 1),
            '$' => {
                i += 1;
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '{') {
                    i += 1;
                }
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let cryptobot = word.strip_prefix("cryptobot_").is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if braces == 0 && !c.is_ascii_digit() && (cryptobot || word == "up") {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The `expr:` values of a rule file (inline, or a `|`/`>` block indented under the key).
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(value.to_owned());
        }
    }
    exprs
}

fn rules_text() -> String {
    std::fs::read_to_string(deploy().join("prometheus/cryptobot.rules.yml")).unwrap()
}

/// The PromQL expressions of the Prometheus dashboard.
fn dashboard_expressions() -> Vec<String> {
    let d = dashboard(PROMETHEUS_DASHBOARD);
    queries(&d)
        .into_iter()
        .map(|q| {
            q.get("expr")
                .or_else(|| q.get("query"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("query without an expression: {q}"))
                .to_owned()
        })
        .collect()
}

/// `what: name` for each name in `exprs` that is not `up` and not in `exported`.
fn unknown_names(what: &str, exprs: &[String], exported: &BTreeSet<String>) -> Vec<String> {
    exprs
        .iter()
        .flat_map(|e| promql_metric_names(e))
        .filter(|n| n != "up" && !exported.contains(n))
        .map(|n| format!("{what}: {n}"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Metric families in the `# TYPE` lines of an exposition.
fn type_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_name_extraction() {
    let names = promql_metric_names(
        "max by (instance) (cryptobot_status{status=\"cryptobot_x\", job=~\"$job\"}) # cryptobot_y\n\
         or on (instance) (up{instance=~'$instance'} == 0) * cryptobot_build_info[1d] > 2e3 $__interval",
    );
    let expected: BTreeSet<String> = ["cryptobot_status", "up", "cryptobot_build_info"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
    let exprs = rule_expressions(&rules_text());
    assert_eq!(exprs.len(), 7, "{exprs:?}");
    assert!(
        exprs
            .iter()
            .all(|e| !e.trim().is_empty() && !e.contains("severity"))
    );
}

#[test]
fn dashboard_and_rules_name_only_metrics_the_agent_exports() {
    let rules = rules_text();
    let rule_exprs = rule_expressions(&rules);
    let dash_exprs = dashboard_expressions();
    let wanted: BTreeSet<String> = rule_exprs
        .iter()
        .chain(&dash_exprs)
        .flat_map(|e| promql_metric_names(e))
        .filter(|n| n != "up")
        .collect();
    assert!(wanted.len() >= 10, "{wanted:?}");

    let lab = Lab::start(1);
    let vm = lab.vm(1);
    start_agent(
        vm,
        "[daemon]\ninterval = \"2s\"\n[restart]\nenabled = false\n",
        5,
    );
    // A value not known yet (the first heartbeat, say) is left out of the exposition; wait a few
    // check cycles for every wanted family, then compare what is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let exported = loop {
        let out = vm.run(&[
            "curl",
            "-sf",
            "-H",
            "Accept: text/plain;version=0.0.4",
            "http://127.0.0.1:8080/metrics",
        ]);
        assert!(out.status.success(), "{out:?}");
        let names = type_names(&String::from_utf8_lossy(&out.stdout));
        if wanted.is_subset(&names) || Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(exported.contains("cryptobot_status"), "{exported:?}");

    // A copy of the rules with a misspelt metric still passes promtool, but not this check.
    let broken = rules.replacen(
        "cryptobot_service_active == 0",
        "cryptobot_service_actve == 0",
        1,
    );
    assert_ne!(broken, rules);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.rules.yml"), &broken).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules", "broken.rules.yml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        unknown_names("broken rules", &rule_expressions(&broken), &exported)
            .into_iter()
            .filter(|n| n.ends_with("cryptobot_service_actve"))
            .count(),
        1
    );

    let mut unknown = unknown_names(
        "deploy/prometheus/cryptobot.rules.yml",
        &rule_exprs,
        &exported,
    );
    unknown.extend(unknown_names(PROMETHEUS_DASHBOARD, &dash_exprs, &exported));
    assert!(
        unknown.is_empty(),
        "metrics the agent does not export:\n{}\nexported: {exported:?}",
        unknown.join("\n")
    );
}

/// The `health.*` metric names in a KQL query (they appear in string literals).
fn kql_metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = query;
    while let Some(at) = rest.find("health.") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at + "health.".len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && len > 0 {
            names.insert(format!("health.{}", &tail[..len]));
        }
        rest = &tail[len..];
    }
    names
}

#[test]
fn azure_queries_name_only_metrics_the_agent_sends() {
    let sent: BTreeSet<&str> = cryptobot_agent::alerts::appinsights::METRIC_NAMES
        .iter()
        .copied()
        .collect();
    let d = dashboard(AZURE_DASHBOARD);
    let mut used = BTreeSet::new();
    for q in queries(&d) {
        let kql = q["azureLogAnalytics"]["query"]
            .as_str()
            .unwrap_or_else(|| panic!("not a Logs query: {q}"));
        assert!(kql.contains("customMetrics"), "{kql}");
        assert!(
            kql.contains(&format!(
                "cloud_RoleName == \"{}\"",
                cryptobot_agent::alerts::appinsights::CLOUD_ROLE
            )),
            "{kql}"
        );
        used.extend(kql_metric_names(kql));
    }
    let unknown: Vec<&String> = used.iter().filter(|n| !sent.contains(n.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "not sent by the agent: {unknown:?} (it sends {sent:?})"
    );
    // Every metric the agent sends has a panel.
    let missing: Vec<&&str> = sent.iter().filter(|n| !used.contains(**n)).collect();
    assert!(missing.is_empty(), "no query shows {missing:?}");
    assert_eq!(
        kql_metric_names("name == \"health.disk_usage\" or xhealth.no or health."),
        BTreeSet::from(["health.disk_usage".to_owned()])
    );
}
