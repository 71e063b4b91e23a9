//! The largest report an agent produces still gives the right row over run-command, whose output
//! keeps only the last 4,096 bytes: 100 events in the daemon's history, five long multibyte error
//! lines of the bot in the journal window, and a long multibyte alert (a watched mount whose path
//! is long and not ASCII). The VM trims the report (events first, then detail, keeping the original
//! fields) instead of dropping it, and cryptoctl says so.

use std::time::Duration;

use cryptobot_tests::{
    Lab, Vm,
    agent::start_agent,
    agent_bin,
    azure_emulator::{AzureEmulator, EmulatedVm},
    ctl::{cryptoctl, show},
    wait_until,
};
use serde_json::Value;

/// A mount point of three long components of multibyte characters.
fn long_mount() -> String {
    let part = "ünïcödé-ドライブ-データ-".repeat(6);
    format!("/mnt/{part}/{part}/{part}")
}

/// `n` characters of varied multibyte text (a fixed pseudo-random sequence: it compresses badly).
fn varied_text(seed: u32, n: usize) -> String {
    let alphabet: Vec<char> =
        "äöüßéèêëïîôœùûçñ你好世界日本語のテキストабвгдежзийклмнопрстуфхцчшщ🚀⚠️✅❌💰🔥"
            .chars()
            .collect();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            alphabet[(x >> 16) as usize % alphabet.len()]
        })
        .collect()
}

fn status(vm: &Vm) -> Value {
    let out = vm.run(&[agent_bin().to_str().unwrap(), "status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn the_largest_report_is_trimmed_not_dropped_over_run_command() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    let mount = long_mount();
    vm.sh(&format!(
        "mkdir -p '{mount}' && mount -t tmpfs -o size=1m lab '{mount}' && \
         head -c 200000 /dev/zero > '{mount}/fill'"
    ));
    let config = format!(
        "[daemon]\ninterval = \"20s\"\n\n[disk]\nmounts = [\"/\", \"{mount}\"]\n\
         warning_percent = 1\ncritical_percent = 99\n"
    );
    start_agent(vm, &config, 30);
    let agent = agent_bin().display().to_string();
    vm.sh(&format!(
        "for i in $(seq 50); do {agent} pause --for 1h >/dev/null && {agent} resume >/dev/null; done"
    ));
    let lines: String = (0..5)
        .map(|i| {
            format!(
                "2026-01-24 10:16:4{i},002 [ERROR] faucets.firefaucet - Claim failed: {}\n",
                varied_text(i, 1500)
            )
        })
        .collect();
    vm.write_file("/run/fake-worker/say", lines);
    wait_until(
        "the five error lines in a report",
        Duration::from_secs(40),
        || status(vm)["journal"]["count"] == 5,
    );
    let report = status(vm);
    assert_eq!(report["daemon"]["events"].as_array().unwrap().len(), 100);
    assert!(
        report["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains(&mount)),
        "{report:#}"
    );
    // As the VM would send it whole, it is far over run-command's 4,096 bytes.
    let whole = vm.sh(&format!(
        "{agent} status --json | gzip -c -n | base64 -w0 | wc -c"
    ));
    assert!(whole.trim().parse::<usize>().unwrap() > 4096, "{whole}");

    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::lab("Bot01", "BOTS-RG", vm))
        .start();
    let out = cryptoctl(&emu)
        .args(["health", "-g", "BOTS-RG", "-o", "json"])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&out)));
    let row = &rows[0];
    assert_eq!(row["status"], "WARNING", "{row:#}");
    assert_eq!(row["service"], "active", "{row:#}");
    assert!(row["disk_usage_percent"].is_u64(), "{row:#}");
    let alerts: Vec<&str> = row["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(alerts.contains(&"Found 5 recent errors in logs"), "{row:#}");
    let warnings = row["warnings"].to_string();
    assert!(
        warnings.contains("the agent's report was trimmed to fit run-command's 4096-byte output"),
        "{row:#}"
    );
}
