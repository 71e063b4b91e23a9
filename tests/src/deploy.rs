//! A fleet for `cryptoctl deploy` tests: fresh lab VMs (no bot, no agent, the `azureuser` account)
//! behind the Azure emulator in resource group `BOTS-RG`, the stand-in bot's repository
//! bind-mounted into them, and an agent configuration file next to it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{
    Lab, LabBuilder, Vm,
    azure_emulator::{AzureEmulator, EmulatedVm},
    bot::{BotRepo, prepare_vm},
    ctl::{cryptoctl, ssh_args},
    dist_agent_bin,
};

/// The resource group of every VM of a [`DeployFleet`].
pub const GROUP: &str = "BOTS-RG";

/// The VMs, the emulator in front of them, the bot's repository and the agent configuration.
#[derive(Debug)]
pub struct DeployFleet {
    /// The lab; VM `i` (1-based) is the emulator's `names[i - 1]`.
    pub lab: Lab,
    /// The emulator.
    pub emu: AzureEmulator,
    /// The stand-in bot's repository.
    pub repo: BotRepo,
    /// The agent configuration `deploy` installs (`--agent-config`).
    pub config: PathBuf,
}

impl DeployFleet {
    /// Boots `lab` (with sshd, without the lab's stand-in worker) with one VM per name, prepares
    /// each VM as a new Azure VM looks, and writes `agent_config`.
    pub fn start(lab: LabBuilder, names: &[&str], agent_config: &str) -> DeployFleet {
        let repo = BotRepo::create();
        let lab = lab
            .vms(names.len())
            .ssh(true)
            .worker(false)
            .bind(&repo.dir)
            .start();
        let mut emu = AzureEmulator::builder();
        for (vm, name) in lab.vms().iter().zip(names) {
            prepare_vm(vm);
            emu = emu.vm(EmulatedVm::lab(name, GROUP, vm));
        }
        let config = repo.dir.join("agent.toml");
        std::fs::write(&config, agent_config).expect("agent.toml");
        DeployFleet {
            lab,
            emu: emu.start(),
            repo,
            config,
        }
    }

    /// VM `i` (1-based).
    pub fn vm(&self, i: usize) -> &Vm {
        self.lab.vm(i)
    }

    /// `cryptoctl [ssh options] deploy -g BOTS-RG --repo-url … --agent-config …` with the portable
    /// agent (`--agent-binary`, also what `--agent-url` must serve over run-command), then `args`.
    pub fn deploy(&self, ssh: bool, args: &[&str]) -> Output {
        self.deploy_with(ssh, &dist_agent_bin(), args)
    }

    /// [`DeployFleet::deploy`] with another agent binary.
    pub fn deploy_with(&self, ssh: bool, agent: &Path, args: &[&str]) -> Output {
        let mut c = self.cryptoctl(ssh);
        c.args(["deploy", "-g", GROUP, "--repo-url"])
            .arg(self.repo.url())
            .arg("--agent-binary")
            .arg(agent)
            .arg("--agent-config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("cryptoctl deploy")
    }

    /// `cryptoctl` for this fleet, over ssh or run-command.
    pub fn cryptoctl(&self, ssh: bool) -> Command {
        let mut c = cryptoctl(&self.emu);
        if ssh {
            c.args(ssh_args(&self.lab));
        }
        c
    }
}
