//! The worker's heartbeat file: the float epoch on its first line, else the mtime.
#![no_main]

use chrono::{TimeZone as _, Utc};
use cryptobot_agent::checks::heartbeat::{heartbeat_time, parse_epoch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_epoch(data);
    let mtime = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let _ = heartbeat_time(data, mtime);
});
