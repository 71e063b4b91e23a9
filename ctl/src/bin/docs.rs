//! `cryptoctl-docs DIR`: writes what the cryptoctl package installs beside the binary, generated
//! from the same clap definitions as the command line itself: `DIR/completions/{cryptoctl.bash,
//! _cryptoctl, cryptoctl.fish}` and `DIR/man/cryptoctl.1` plus one page per subcommand
//! (`cryptoctl-health.1`, `cryptoctl-alerts-deploy.1`…). Run by `cargo xtask dist`.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};
use clap::{Command, CommandFactory as _};
use clap_complete::Shell;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .context("usage: cryptoctl-docs DIR")?;
    let dir = Path::new(&dir);
    let mut cmd = cryptoctl::cli::Cli::command();
    cmd.build();

    let completions = dir.join("completions");
    fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "cryptoctl", &completions)
            .with_context(|| format!("{shell} completion"))?;
    }

    let man = dir.join("man");
    fs::create_dir_all(&man)?;
    write_pages(&cmd, "cryptoctl", &man)
}

/// The page of `cmd` as `name.1`, then one per subcommand as `name-sub.1`, recursively.
fn write_pages(cmd: &Command, name: &str, dir: &Path) -> Result<()> {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .with_context(|| format!("man page of {name}"))?;
    fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
