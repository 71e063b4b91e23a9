//! `cargo xtask`: the command line of the project's tasks (see the library for the tasks).

use std::path::Path;

use anyhow::{Result, bail};
use xtask::{
    dist,
    glibc::{GlibcNeeds, MAX_GLIBC},
    tools::{CARGO_ZIGBUILD_VERSION, ZIGLANG_VERSION},
};

fn help() -> String {
    format!(
        "\
Project tasks: cargo xtask <TASK>

Tasks:
  dist               Build the agent users' VMs get, target/dist/cryptobot-agent (x86_64),
                     and target/dist/cryptobot-agent.sha256 (sha256sum format), and the Debian
                     packages cryptobot-agent_<version>_amd64.deb and cryptoctl_<version>_amd64.deb
                     (dpkg-deb). The binaries run on glibc {MAX_GLIBC} or newer, whatever glibc
                     this machine has: Zig links them, through cargo-zigbuild. Installs what is
                     missing:
                       ziglang {ZIGLANG_VERSION} from PyPI (python3 -m pip install)
                       cargo-zigbuild {CARGO_ZIGBUILD_VERSION} (cargo install --locked)
                     Fails, leaving target/dist as it was, when the binary needs a newer glibc.
  glibc-needs PATH…  Print the highest glibc version each ELF binary needs; fails when one needs
                     a glibc newer than {MAX_GLIBC}.
  help               Print this help (also: cargo xtask <TASK> --help).
"
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", help());
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("dist") if args.len() == 1 => dist::dist(),
        Some("glibc-needs") if args.len() > 1 => glibc_needs(&args[1..]),
        None | Some("help") => {
            print!("{}", help());
            Ok(())
        }
        Some(_) => bail!(
            "unknown task or arguments: {}\n\n{}",
            args.join(" "),
            help()
        ),
    }
}

fn glibc_needs(paths: &[String]) -> Result<()> {
    let mut too_new = 0;
    for path in paths {
        let needs = GlibcNeeds::of_file(Path::new(path))?;
        match needs.check(MAX_GLIBC) {
            Ok(()) => println!("{path}: {}", needs.describe()),
            Err(e) => {
                println!("{path}: {} — {e}", needs.describe());
                too_new += 1;
            }
        }
    }
    if too_new > 0 {
        bail!(
            "{too_new} of {} binaries need more than glibc {MAX_GLIBC}",
            paths.len()
        );
    }
    Ok(())
}
