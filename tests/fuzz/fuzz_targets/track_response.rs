//! The ingestion endpoint's answer: the first two bytes are the HTTP status, the rest the body,
//! classified against a batch whose size is the third byte.
#![no_main]

use cryptobot_agent::alerts::appinsights::{TrackResponse, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    let n = usize::from(data[2]);
    let body = serde_json::from_slice::<TrackResponse>(&data[3..]).ok();
    let _ = classify(status, body.as_ref(), n, "ingest.example");
});
