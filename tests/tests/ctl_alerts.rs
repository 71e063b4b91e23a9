//! `cryptoctl alerts` against the Azure emulator: the dry run prints the action group and the five
//! log alert rules and changes nothing; deploy creates them, a second deploy changes nothing, show
//! reports no drift (and finds drift made behind cryptoctl's back), delete removes only what
//! cryptoctl created; bad input is refused before any call, and ARM's refusals are shown. The last
//! test runs the agent's real telemetry sender against an ingestion endpoint in the test and checks
//! every rule's query against what it sent, down to evaluating the queries on those rows.

use std::collections::BTreeMap;

use cryptobot_agent::alerts::appinsights::{CLOUD_ROLE, METRIC_NAMES};
use cryptobot_tests::{
    azure_emulator::{
        AzureEmulator, SUBSCRIPTION,
        logs::{agent_envelopes, fires, kql, now_ms, tables},
    },
    ctl::{run, show},
};
use serde_json::{Value, json};

const WEBHOOK: &str = "https://alerts:hook-password@hooks.example.com/azure?token=hook-token";
const LOGIC_APP_SIG: &str = "logic-app-signature";

fn logic_app() -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/OPS-RG/providers/Microsoft.Logic/workflows/to-teams=\
         https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-10-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={LOGIC_APP_SIG}"
    )
}

fn setup() -> (AzureEmulator, String) {
    let emu = AzureEmulator::builder().start();
    let id = emu.add_app_insights("OPS-RG", "bots-insights", "West Europe");
    (emu, id)
}

fn deploy_args<'a>(ai: &'a str, la: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "alerts",
        "deploy",
        "--app-insights",
        ai,
        "--email",
        "ops@example.com",
        "--webhook",
        WEBHOOK,
        "--logic-app",
        la,
    ];
    v.extend_from_slice(extra);
    v
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn writes(emu: &AzureEmulator) -> Vec<String> {
    emu.seen()
        .into_iter()
        .filter(|s| s.method == "PUT" || s.method == "DELETE")
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect()
}

fn no_secrets(out: &std::process::Output) {
    let t = text(out);
    for secret in ["hook-password", "hook-token", LOGIC_APP_SIG] {
        assert!(!t.contains(secret), "{secret} printed:\n{t}");
    }
}

fn dry_run(emu: &AzureEmulator, ai: &str) -> Vec<Value> {
    let la = logic_app();
    let out = run(emu, &deploy_args(ai, &la, &["--dry-run"]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    no_secrets(&out);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    v.as_array().unwrap().clone()
}

#[test]
fn dry_run_prints_the_action_group_and_five_log_alert_rules_and_changes_nothing() {
    let (emu, ai) = setup();
    let plan = dry_run(&emu, &ai);
    assert!(writes(&emu).is_empty(), "{:?}", writes(&emu));
    assert_eq!(plan.len(), 6);
    assert!(plan.iter().all(|p| p["action"] == "create"), "{plan:#?}");
    let ag = &plan[0];
    assert!(ag["id"].as_str().unwrap().ends_with(
        "/resourceGroups/OPS-RG/providers/Microsoft.Insights/actionGroups/cryptobot-alerts"
    ));
    assert_eq!(ag["apiVersion"], "2023-01-01");
    let p = &ag["body"]["properties"];
    assert_eq!(ag["body"]["location"], "global");
    assert_eq!(p["groupShortName"], "cryptobot");
    assert_eq!(p["emailReceivers"][0]["emailAddress"], "ops@example.com");
    assert_eq!(p["webhookReceivers"][0]["useCommonAlertSchema"], true);
    assert_eq!(
        p["webhookReceivers"][0]["serviceUri"],
        "https://***@hooks.example.com/azure?token=***"
    );
    assert!(
        p["logicAppReceivers"][0]["callbackUrl"]
            .as_str()
            .unwrap()
            .contains("sig=***")
    );
    assert!(
        p["logicAppReceivers"][0]["resourceId"]
            .as_str()
            .unwrap()
            .ends_with("/workflows/to-teams")
    );
    let names: Vec<&str> = plan[1..]
        .iter()
        .map(|r| r["id"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cryptobot-vm-silent",
            "cryptobot-worker-down",
            "cryptobot-crash-loop",
            "cryptobot-disk-critical",
            "cryptobot-heartbeat-stale"
        ]
    );
    for rule in &plan[1..] {
        let b = &rule["body"];
        assert_eq!(rule["apiVersion"], "2021-08-01");
        assert_eq!(b["kind"], "LogAlert");
        assert_eq!(
            b["location"], "westeurope",
            "the region of the Application Insights resource"
        );
        assert_eq!(b["tags"]["managed-by"], "cryptoctl");
        let p = &b["properties"];
        assert_eq!(p["scopes"], json!([ai]));
        assert_eq!(p["autoMitigate"], true);
        assert_eq!(p["evaluationFrequency"], "PT5M");
        assert!(["PT10M", "PT15M"].contains(&p["windowSize"].as_str().unwrap()));
        assert!(p["muteActionsDuration"].is_string());
        assert!(p["severity"].as_u64().unwrap() <= 4);
        assert_eq!(p["actions"]["actionGroups"][0], ag["id"]);
        assert_eq!(
            p["criteria"]["allOf"][0]["dimensions"][0]["name"],
            "cloud_RoleInstance"
        );
    }
}

#[test]
fn deploy_is_idempotent_show_finds_drift_and_delete_keeps_foreign_rules() {
    let (emu, ai) = setup();
    let la = logic_app();
    let out = run(&emu, &deploy_args(&ai, &la, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    no_secrets(&out);
    assert!(
        text(&out).contains("6 created, 0 updated, 0 unchanged"),
        "{}",
        show(&out)
    );
    let stored = emu.monitor_resources();
    let ag = stored
        .iter()
        .find(|r| r["name"] == "cryptobot-alerts")
        .expect("the action group");
    // stored as Azure stores it: the secret is in the resource, just never printed
    assert_eq!(
        ag["properties"]["webhookReceivers"][0]["serviceUri"],
        WEBHOOK
    );

    // the second time nothing is written
    let before = writes(&emu).len();
    let out = run(&emu, &deploy_args(&ai, &la, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).contains("0 created, 0 updated, 6 unchanged"),
        "{}",
        show(&out)
    );
    assert_eq!(writes(&emu).len(), before, "{:?}", writes(&emu));
    let plan = dry_run(&emu, &ai);
    assert!(
        plan.iter()
            .all(|p| p["action"] == "unchanged" && p.get("body").is_none()),
        "{plan:#?}"
    );

    let show_args = [
        "alerts",
        "show",
        "--app-insights",
        &ai,
        "--email",
        "ops@example.com",
        "--webhook",
        WEBHOOK,
        "--logic-app",
        &la,
    ];
    let out = run(&emu, &show_args);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).contains("no drift: 6 resources"),
        "{}",
        show(&out)
    );
    no_secrets(&out);

    // someone else's rule in the same group, without the tag (and with the same prefix)
    let rules = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/OPS-RG/providers/Microsoft.Insights/scheduledQueryRules"
    );
    let mut foreign = stored
        .iter()
        .find(|r| r["name"] == "cryptobot-worker-down")
        .unwrap()
        .clone();
    foreign["tags"] = json!({"owner": "someone-else"});
    let (status, body) = emu.monitor_request(
        "PUT",
        &format!("{rules}/cryptobot-foreign?api-version=2021-08-01"),
        &foreign,
    );
    assert_eq!(status, 201, "{body}");
    // and a change behind cryptoctl's back
    let mut changed = stored
        .iter()
        .find(|r| r["name"] == "cryptobot-disk-critical")
        .unwrap()
        .clone();
    changed["properties"]["severity"] = json!(4);
    changed["properties"]["criteria"]["allOf"][0]["threshold"] = json!(99);
    let (status, _) = emu.monitor_request(
        "PUT",
        &format!("{rules}/cryptobot-disk-critical?api-version=2021-08-01"),
        &changed,
    );
    assert_eq!(status, 200);
    let out = run(&emu, &show_args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let t = text(&out);
    assert!(
        t.contains("drift") && t.contains("properties.severity") && t.contains("threshold"),
        "{t}"
    );
    assert!(!t.contains("cryptobot-foreign"), "not cryptoctl's: {t}");
    let out = run(&emu, &deploy_args(&ai, &la, &[]));
    assert!(
        text(&out).contains("0 created, 1 updated, 5 unchanged"),
        "{}",
        show(&out)
    );
    assert!(text(&out).contains("updated   scheduledQueryRules/cryptobot-disk-critical (properties.severity, properties.criteria.allOf[0].threshold)"), "{}", show(&out));
    assert_eq!(run(&emu, &show_args).status.code(), Some(0));

    let out = run(
        &emu,
        &["alerts", "delete", "--app-insights", &ai, "--dry-run"],
    );
    assert!(
        text(&out).contains("6 resources would be deleted"),
        "{}",
        show(&out)
    );
    let out = run(&emu, &["alerts", "delete", "--app-insights", &ai]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out).contains("6 resources deleted; 1 not created by cryptoctl"),
        "{}",
        show(&out)
    );
    let left: Vec<String> = emu
        .monitor_resources()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["bots-insights", "cryptobot-foreign"]);
    let out = run(&emu, &show_args);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("missing"), "{}", show(&out));
}

#[test]
fn bad_input_is_refused_before_any_call() {
    let (emu, ai) = setup();
    let vm = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/OPS-RG/providers/Microsoft.Compute/virtualMachines/bot1"
    );
    let ws = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/OPS-RG/providers/Microsoft.OperationalInsights/workspaces/logs"
    );
    let la = logic_app();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["alerts", "deploy", "--app-insights", &vm],
            "not an Application Insights component",
        ),
        (
            vec!["alerts", "deploy", "--app-insights", &ws],
            "give it with --workspace",
        ),
        (
            vec!["alerts", "deploy", "--app-insights", "bots-insights"],
            "is not a resource id",
        ),
        (
            vec!["alerts", "deploy", "--email", "ops"],
            "not an e-mail address",
        ),
        (
            deploy_args(&ai, &la, &["--email", "ops@@example.com"]),
            "not an e-mail address",
        ),
        (
            deploy_args(
                &ai,
                &la,
                &["--webhook", "ftp://user:hook-password@x.example/"],
            ),
            "--webhook: not an http(s) URL",
        ),
        (
            deploy_args(&ai, &la, &["--webhook", "hook-password"]),
            "--webhook",
        ),
        (
            deploy_args(
                &ai,
                &la,
                &[
                    "--logic-app",
                    "/subscriptions/x/workflows/y=https://a.example/",
                ],
            ),
            "not a Logic App resource id",
        ),
        (
            deploy_args(&ai, &la, &["--name-prefix", "bots:"]),
            "--name-prefix",
        ),
        (
            deploy_args(&ai, &la, &["--location", "west/europe"]),
            "not an Azure region",
        ),
        (vec!["alerts", "deploy"], "--app-insights"),
    ];
    for (args, why) in cases {
        let out = run(&emu, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", show(&out));
        assert!(text(&out).contains(why), "{args:?}: {}", show(&out));
        no_secrets(&out);
    }
    assert!(emu.seen().is_empty(), "{:?}", emu.seen());
    // a component that does not exist
    let gone = ai.replace("bots-insights", "gone");
    let out = run(
        &emu,
        &[
            "alerts",
            "deploy",
            "--app-insights",
            &gone,
            "--email",
            "ops@example.com",
        ],
    );
    assert_eq!(out.status.code(), Some(70), "{}", show(&out));
    assert!(text(&out).contains("does not exist"), "{}", show(&out));
    assert!(writes(&emu).is_empty());
}

#[test]
fn arms_refusal_is_shown_with_its_code_and_message() {
    let (emu, ai) = setup();
    let la = logic_app();
    let out = run(&emu, &deploy_args(&ai, &la, &["--location", "marsnorth"]));
    assert_eq!(out.status.code(), Some(70), "{}", show(&out));
    let t = text(&out);
    let refused = "writing scheduledQueryRules/cryptobot-vm-silent: Azure error 400 \
                   LocationNotAvailableForResourceType: The provided location 'marsnorth'";
    assert!(t.contains(refused), "{t}");
    no_secrets(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_matches_the_telemetry_a_real_agent_sends() {
    let host = "bot-vm-07";
    let envelopes = agent_envelopes(host, None).await;
    let (emu, ai) = setup();
    let plan = tokio::task::spawn_blocking(move || dry_run(&emu, &ai))
        .await
        .unwrap();
    let tables = tables(&envelopes);
    let metric_names: Vec<&str> = envelopes
        .iter()
        .filter(|e| e["data"]["baseType"] == "MetricData")
        .flat_map(|e| {
            e["data"]["baseData"]["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap())
        })
        .collect();
    assert!(
        envelopes
            .iter()
            .any(|e| e["data"]["baseType"] == "AvailabilityData"),
        "{envelopes:#?}"
    );
    for e in &envelopes {
        assert_eq!(e["tags"]["ai.cloud.role"], CLOUD_ROLE);
        assert_eq!(e["tags"]["ai.cloud.roleInstance"], host);
    }
    let now = now_ms();
    let mut firing = BTreeMap::new();
    for rule in &plan[1..] {
        let name = rule["id"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let c = &rule["body"]["properties"]["criteria"]["allOf"][0];
        let query = c["query"].as_str().unwrap();
        // the names it filters on are the agent's, and the agent sent them
        for quoted in query.split('"').skip(1).step_by(2) {
            if quoted.starts_with("health.") {
                assert!(
                    METRIC_NAMES.contains(&quoted),
                    "{name}: {quoted} is not one of the agent's metrics"
                );
                assert!(
                    metric_names.contains(&quoted),
                    "{name}: the agent sent no {quoted}: {metric_names:?}"
                );
            } else {
                assert_eq!(quoted, CLOUD_ROLE, "{name}");
            }
        }
        assert_eq!(c["dimensions"][0]["name"], "cloud_RoleInstance", "{name}");
        if name.ends_with("vm-silent") {
            assert!(query.starts_with("availabilityResults\n"), "{query}");
            assert_eq!(rule["body"]["properties"]["overrideQueryTimeRange"], "P2D");
        } else {
            assert!(query.starts_with("customMetrics\n"), "{query}");
        }
        let rows = kql(query, &tables, now);
        assert!(
            !rows.is_empty() || name.ends_with("vm-silent"),
            "{name}: no rows from {query}"
        );
        firing.insert(name, fires(c, &rows));
    }
    // the report is CRITICAL with the worker down; disk 41 %, heartbeat 3 s, no crashes
    let expected: BTreeMap<String, Vec<String>> = [
        ("cryptobot-vm-silent", vec![]),
        ("cryptobot-worker-down", vec![host.to_owned()]),
        ("cryptobot-crash-loop", vec![]),
        ("cryptobot-disk-critical", vec![]),
        ("cryptobot-heartbeat-stale", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(firing, expected);
    // the same telemetry a quarter of an hour later, with nothing since: the VM is silent
    let silent = &plan[1]["body"]["properties"]["criteria"]["allOf"][0];
    let later = now + 15 * 60_000;
    assert_eq!(
        fires(
            silent,
            &kql(silent["query"].as_str().unwrap(), &tables, later)
        ),
        [host]
    );
    // and after three days it is forgotten
    let gone = now + 3 * 86_400_000;
    assert!(
        fires(
            silent,
            &kql(silent["query"].as_str().unwrap(), &tables, gone)
        )
        .is_empty()
    );
}

#[test]
fn a_workspace_gets_the_workspace_tables_and_columns() {
    let emu = AzureEmulator::builder().start();
    let ws = emu.add_workspace("LOGS-RG", "bots-logs", "northeurope");
    let out = run(
        &emu,
        &[
            "alerts",
            "deploy",
            "--workspace",
            &ws,
            "-g",
            "OPS-RG",
            "--name-prefix",
            "bots-",
            "--email",
            "ops@example.com",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = plan.as_array().unwrap();
    assert!(
        plan[0]["id"].as_str().unwrap().ends_with(
            "/resourceGroups/OPS-RG/providers/Microsoft.Insights/actionGroups/bots-alerts"
        )
    );
    assert_eq!(plan[0]["body"]["properties"]["groupShortName"], "bots");
    let silent = &plan[1]["body"];
    assert_eq!(silent["location"], "northeurope");
    let c = &silent["properties"]["criteria"]["allOf"][0];
    assert!(
        c["query"]
            .as_str()
            .unwrap()
            .starts_with("AppAvailabilityResults\n"),
        "{c}"
    );
    assert_eq!(c["dimensions"][0]["name"], "AppRoleInstance");
    let down = &plan[2]["body"]["properties"]["criteria"]["allOf"][0];
    assert!(
        down["query"]
            .as_str()
            .unwrap()
            .contains("AppMetrics\n| where Name == \"health.service_active\""),
        "{down}"
    );
    assert!(writes(&emu).is_empty());
}
