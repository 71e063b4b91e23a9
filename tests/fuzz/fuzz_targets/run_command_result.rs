//! Azure run-command's result (`RunCommandResult` JSON) split into stdout and stderr.
#![no_main]

use cryptoctl::arm::run_command::{RunCommandResult, parse_result};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = serde_json::from_slice::<RunCommandResult>(data) {
        let _ = parse_result(&result);
    }
});
