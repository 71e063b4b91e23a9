//! The Azure emulator is as strict as Resource Manager, and cryptoctl copes with Azure's real
//! cadence: an api-version the provider does not have is answered `400` with ARM's error code and
//! message; a run-command is polled at cryptoctl's default interval (5 s) when the service sends no
//! `Retry-After` (it sends none for run-command), and at the `Retry-After` when one comes.

use std::process::Command;

use cryptobot_tests::{
    azure_emulator::{AzureEmulator, EmulatedVm, Faults},
    ctl::{cryptoctl, show},
};
use serde_json::Value;

const VM_PATH: &str = "/subscriptions/00000000-0000-4000-8000-00000000c0de/resourceGroups/BOTS-RG/providers/Microsoft.Compute/virtualMachines/Bot01";

/// `GET` of `path_and_query` with the emulator's token: (status, body).
fn get(emu: &AzureEmulator, path_and_query: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(emu.ca_file())
        .args(["-H", &format!("Authorization: Bearer {}", emu.token())])
        .arg(format!("{}{path_and_query}", emu.endpoint()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (
        code.parse().expect("status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn api_versions_the_provider_does_not_have_are_refused_as_arm_refuses_them() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("Bot01", "BOTS-RG"))
        .start();
    let (code, _) = get(&emu, &format!("{VM_PATH}?api-version=2024-11-01"));
    assert_eq!(code, 200);
    let (code, body) = get(&emu, &format!("{VM_PATH}?api-version=2099-01-01"));
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "NoRegisteredProviderFound", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("API version '2099-01-01' for type 'virtualMachines'")
            && message.contains("2024-11-01"),
        "{message}"
    );
    let (code, body) = get(&emu, &format!("{VM_PATH}?api-version=latest"));
    assert_eq!(code, 400);
    assert_eq!(
        body["error"]["code"], "InvalidApiVersionParameter",
        "{body}"
    );
    let (code, body) = get(&emu, &format!("{VM_PATH}?api-version=2024-11-01-preview"));
    assert_eq!(
        (code, &body["error"]["code"]),
        (400, &Value::from("NoRegisteredProviderFound"))
    );
}

/// The moments the operation of the one run-command was polled, as gaps in seconds.
fn poll_gaps(emu: &AzureEmulator) -> Vec<f64> {
    let polls: Vec<_> = emu
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.uri.contains("/operations/"))
        .map(|s| s.at)
        .collect();
    let posts: Vec<_> = emu
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.uri.contains("/runCommand"))
        .map(|s| s.at)
        .collect();
    assert_eq!(posts.len(), 1);
    std::iter::once(posts[0])
        .chain(polls.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

fn health_with_real_polling(emu: &AzureEmulator) {
    let out = cryptoctl(emu)
        .env_remove("CRYPTOCTL_POLL_INTERVAL")
        .args(["health", "-g", "BOTS-RG", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn run_command_is_polled_at_the_default_interval_or_the_services_retry_after() {
    // Azure sends no Retry-After for run-command: cryptoctl's default interval applies.
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("Bot01", "BOTS-RG"))
        .faults(Faults {
            synthetic_run_time: std::time::Duration::from_secs(7),
            ..Faults::default()
        })
        .start();
    health_with_real_polling(&emu);
    let gaps = poll_gaps(&emu);
    assert_eq!(gaps.len(), 2, "two polls 5 s apart cover 7 s: {gaps:?}");
    assert!(gaps.iter().all(|g| (4.9..6.0).contains(g)), "{gaps:?}");

    // A Retry-After from the service wins over the default.
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("Bot01", "BOTS-RG"))
        .faults(Faults {
            synthetic_run_time: std::time::Duration::from_secs(3),
            poll_retry_after: 1,
            ..Faults::default()
        })
        .start();
    health_with_real_polling(&emu);
    let gaps = poll_gaps(&emu);
    assert!((3..=5).contains(&gaps.len()), "{gaps:?}");
    assert!(gaps.iter().all(|g| (0.95..1.8).contains(g)), "{gaps:?}");
}

/// A `Retry-After` of a day is not waited out: the VM's deadline (`--timeout`) bounds the wait and
/// the row is UNKNOWN with the reason.
#[test]
fn a_retry_after_of_a_day_is_bounded_by_the_deadline() {
    let emu = AzureEmulator::builder()
        .vm(EmulatedVm::synthetic("Bot01", "BOTS-RG"))
        .faults(Faults {
            synthetic_run_time: std::time::Duration::from_secs(3600),
            poll_retry_after: 86_400,
            ..Faults::default()
        })
        .start();
    let started = std::time::Instant::now();
    let out = cryptoctl(&emu)
        .args(["health", "-g", "BOTS-RG", "--timeout", "10s", "-o", "json"])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(rows[0]["status"], "UNKNOWN", "{}", show(&out));
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer within"),
        "{}",
        show(&out)
    );
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}
