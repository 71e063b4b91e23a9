//! The Application Insights connection string.
#![no_main]

use cryptobot_agent::alerts::connection_string::ConnectionString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ConnectionString::parse(text);
    }
});
