//! A pseudo-terminal for running a program with its stderr on a terminal (for output that only
//! appears there, like a progress bar), reading everything the program wrote to it.

use std::{
    io::Read as _,
    os::fd::OwnedFd,
    process::{Child, Command, Output, Stdio},
};

use rustix::{
    fs::{Mode, OFlags},
    pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt},
    termios::{Winsize, tcsetwinsize},
};

/// A pseudo-terminal pair: the program gets the terminal side, the test reads the other.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    terminal: OwnedFd,
}

impl Pty {
    /// Opens a pseudo-terminal of `rows` x `cols`.
    pub fn open(rows: u16, cols: u16) -> std::io::Result<Pty> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let terminal = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        tcsetwinsize(
            &terminal,
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        Ok(Pty { master, terminal })
    }

    /// Runs `cmd` with its stderr on the terminal and its stdout piped; returns its output, with
    /// what reached the terminal in place of stderr.
    pub fn run_with_stderr(self, mut cmd: Command) -> std::io::Result<Output> {
        cmd.stderr(Stdio::from(self.terminal))
            .stdout(Stdio::piped());
        let child: std::io::Result<Child> = cmd.spawn();
        // The command keeps its copy of the terminal side until dropped: drop it, so the master
        // reads end once the program (the last holder) exits.
        drop(cmd);
        let child = child?;
        let mut master = std::fs::File::from(self.master);
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: every terminal-side descriptor is closed
                    Err(_) => break,
                }
            }
            seen
        });
        let mut out = child.wait_with_output()?;
        out.stderr = reader.join().unwrap_or_default();
        Ok(out)
    }
}
