//! The framed result the remote script prints (`CRYPTOCTL-RESULT …` / `CRYPTOCTL-EXIT n`),
//! including its gzip and base64 blobs.
#![no_main]

use cryptoctl::remote::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = frame::parse(&text) {
        for key in ["report", "log", "stderr", "out", "code", "action", "agent"] {
            let _ = f.get(key);
            let _ = f.number(key);
            let _ = f.flag(key);
            let _ = f.blob(key);
        }
    }
});
