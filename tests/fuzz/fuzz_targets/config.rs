//! `agent.toml`: `Config::parse` on any text, without the process environment.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cryptobot_agent::config::Config::parse_with_env(text, Path::new("agent.toml"), &|_| {
        None
    });
});
