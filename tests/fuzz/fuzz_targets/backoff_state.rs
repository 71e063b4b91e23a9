//! `restart_backoff.json` (and `journal_state.json`): whatever deserialises is then used the way
//! the daemon uses it (due time, recording attempts, systemd's restart counter).
#![no_main]

use chrono::{TimeZone as _, Utc};
use cryptobot_agent::{config::Config, restart::state::BackoffState, state::JournalState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<JournalState>(data);
    let Ok(mut state) = serde_json::from_slice::<BackoffState>(data) else {
        return;
    };
    let cfg = Config::default().restart;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let _ = state.due_at(now);
    let _ = state.observe_n_restarts(u32::from(data.len() as u16), now);
    state.record_attempt(now, &cfg);
    let _ = state.due_at(now);
    let _ = serde_json::to_vec(&state);
});
