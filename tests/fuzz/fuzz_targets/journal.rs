//! `journalctl -o json` output, one JSON object per line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cryptobot_agent::checks::journal::parse_entries(data);
});
