//! Crash safety of the state files: a writer is killed with SIGKILL at random moments, 200 times;
//! afterwards the file always parses and holds the last write that had completed.
//!
//! The writer is this test binary itself, started again in a child mode (selected by an
//! environment variable), so the real `state::save_json` is what gets killed mid-write.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use cryptobot_agent::state::{load_json, save_json};

const CHILD: &str = "CRYPTOBOT_STATE_WRITER_DIR";

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    seq: u64,
    // enough bytes that a write is more than one page
    padding: String,
}

/// In child mode: write records with increasing `seq` forever, printing each `seq` once its write
/// has completed.
#[test]
#[ignore = "the child process of the crash test: runs only when that test starts it"]
fn writer_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("restart_backoff.json");
    let start: u64 = std::env::var("CRYPTOBOT_STATE_WRITER_START")
        .unwrap()
        .parse()
        .unwrap();
    let padding = "x".repeat(9000);
    for seq in start.. {
        save_json(
            &path,
            &Record {
                seq,
                padding: padding.clone(),
            },
        )
        .unwrap();
        println!("done {seq}");
    }
}

#[test]
fn kill_9_at_random_moments_never_corrupts_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let path = dir.path().join("restart_backoff.json");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_start = 0;
    for round in 0..200 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "writer_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .env("CRYPTOBOT_STATE_WRITER_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // let it complete a random number of writes (1..=8), then kill it at once, mid-way through
        // the next one more often than not
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let writes = 1 + seed % 8;
        let mut last_done = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("done ") {
                last_done = Some(n.parse::<u64>().unwrap());
                if last_done.unwrap() + 1 - next_start >= writes {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let last_done = last_done.expect("the writer completed at least one write");
        let record: Record = load_json(&path)
            .unwrap_or_else(|e| panic!("round {round}: state unreadable after kill -9: {e}"))
            .expect("state file exists");
        assert!(
            record.seq >= last_done,
            "round {round}: file holds {} but {last_done} had completed",
            record.seq
        );
        next_start = record.seq + 1;
        // what a killed writer leaves besides the state file is only temporaries, which the agent
        // removes when it starts
        cryptobot_agent::state::remove_stale_temporaries(dir.path());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("restart_backoff.json")],
            "round {round}"
        );
    }
}
