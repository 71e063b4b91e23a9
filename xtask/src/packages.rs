//! What goes into each Debian package (see [`crate::deb`] for how a package is built): the files
//! of `deploy/`, the portable binaries and the generated completions and man pages.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};

use crate::deb::{Entry, Package, Source};

/// Where the inputs are.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The workspace.
    pub root: &'a Path,
    /// The portable agent.
    pub agent: &'a Path,
    /// The portable cryptoctl.
    pub cryptoctl: &'a Path,
    /// The generated `completions/` and `man/`.
    pub docs: &'a Path,
    /// The workspace's version.
    pub version: &'a str,
}

fn read(root: &Path, rel: &str) -> Result<String> {
    std::fs::read_to_string(root.join(rel)).with_context(|| format!("reading {rel}"))
}

/// The documentation every package carries: copyright and changelog.
fn docs(name: &str, root: &Path) -> Vec<Entry> {
    vec![
        Entry::file(
            root.join("deploy/debian/copyright"),
            &format!("usr/share/doc/{name}/copyright"),
        ),
        Entry::file(
            root.join("deploy/debian/changelog"),
            &format!("usr/share/doc/{name}/changelog"),
        )
        .gzipped(),
    ]
}

/// The agent's package. Its unit runs `/usr/bin/cryptobot-agent` (the deploy script's copy runs
/// `/usr/local/bin/cryptobot-agent`); everything else is installed as `deploy/` ships it, the
/// polkit rule in the packages' directory (`/usr/share/polkit-1/rules.d`).
pub fn agent(i: &Inputs<'_>) -> Result<Package> {
    let unit = read(i.root, "deploy/cryptobot-agent.service")?;
    let from = "ExecStart=/usr/local/bin/cryptobot-agent ";
    ensure!(
        unit.contains(from),
        "deploy/cryptobot-agent.service: no {from:?}"
    );
    let unit = unit.replace(from, "ExecStart=/usr/bin/cryptobot-agent ");
    let script = |name: &str| -> Result<(&'static str, String)> {
        let text = read(i.root, &format!("deploy/debian/cryptobot-agent.{name}"))?;
        let name = match name {
            "postinst" => "postinst",
            "prerm" => "prerm",
            _ => "postrm",
        };
        Ok((name, text))
    };
    let deploy = i.root.join("deploy");
    let mut entries = vec![
        Entry::program(i.agent, "usr/bin/cryptobot-agent"),
        Entry {
            source: Source::Text(unit),
            path: "lib/systemd/system/cryptobot-agent.service".into(),
            mode: 0o644,
            gzip: false,
        },
        Entry::file(
            deploy.join("cryptobot-worker-restart.path"),
            "lib/systemd/system/cryptobot-worker-restart.path",
        ),
        Entry::file(
            deploy.join("cryptobot-worker-restart.service"),
            "lib/systemd/system/cryptobot-worker-restart.service",
        ),
        Entry::file(
            deploy.join("cryptobot-agent.sysusers"),
            "usr/lib/sysusers.d/cryptobot-agent.conf",
        ),
        Entry::file(
            deploy.join("cryptobot-agent.rules"),
            "usr/share/polkit-1/rules.d/50-cryptobot-agent.rules",
        ),
        Entry::file(deploy.join("agent.toml"), "etc/cryptobot/agent.toml"),
        Entry::file(
            deploy.join("agent.env.example"),
            "usr/share/doc/cryptobot-agent/examples/agent.env",
        ),
        Entry::file(
            i.docs.join("man/cryptobot-agent.1"),
            "usr/share/man/man1/cryptobot-agent.1",
        )
        .gzipped(),
    ];
    entries.extend(docs("cryptobot-agent", i.root));
    Ok(Package {
        name: "cryptobot-agent",
        version: i.version.to_owned(),
        depends: "libc6 (>= 2.28), systemd (>= 247), init-system-helpers (>= 1.54)",
        recommends: Some("polkitd | policykit-1"),
        description: (
            "health agent for the faucet_worker bot",
            "Watches the faucet_worker systemd service over D-Bus, checks disk,\n\
             memory, the heartbeat file and the worker's errors, restarts it with a\n\
             persisted exponential backoff as an unprivileged user, alerts\n\
             (Application Insights, webhooks, e-mail) and serves its health over\n\
             HTTP and gRPC.",
        ),
        entries,
        conffiles: vec!["/etc/cryptobot/agent.toml"],
        scripts: vec![script("postinst")?, script("prerm")?, script("postrm")?],
    })
}

/// The CLI's package: the binary, its completions for bash, zsh and fish, and its man pages.
pub fn cryptoctl(i: &Inputs<'_>) -> Result<Package> {
    let mut entries = vec![
        Entry::program(i.cryptoctl, "usr/bin/cryptoctl"),
        Entry::file(
            i.docs.join("completions/cryptoctl.bash"),
            "usr/share/bash-completion/completions/cryptoctl",
        ),
        Entry::file(
            i.docs.join("completions/_cryptoctl"),
            "usr/share/zsh/vendor-completions/_cryptoctl",
        ),
        Entry::file(
            i.docs.join("completions/cryptoctl.fish"),
            "usr/share/fish/vendor_completions.d/cryptoctl.fish",
        ),
    ];
    let man = i.docs.join("man");
    let mut pages: Vec<_> = std::fs::read_dir(&man)
        .with_context(|| format!("reading {}", man.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("cryptoctl") && n.ends_with(".1"))
        .collect();
    pages.sort();
    ensure!(
        !pages.is_empty(),
        "no cryptoctl man pages in {}",
        man.display()
    );
    for page in pages {
        entries.push(Entry::file(man.join(&page), &format!("usr/share/man/man1/{page}")).gzipped());
    }
    entries.extend(docs("cryptoctl", i.root));
    Ok(Package {
        name: "cryptoctl",
        version: i.version.to_owned(),
        depends: "libc6 (>= 2.28)",
        recommends: Some("openssh-client"),
        description: (
            "operator CLI for a fleet of cryptobot VMs",
            "Lists VMs, queries the health of their agents, restarts, pauses and\n\
             resumes the worker, shows its logs, deploys and rolls back, through Azure\n\
             Resource Manager (run-command) or SSH.",
        ),
        entries,
        conffiles: Vec::new(),
        scripts: Vec::new(),
    })
}
