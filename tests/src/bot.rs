//! A stand-in for the bot's git repository, for `cryptoctl deploy`: a `main.py` that logs like the
//! bot and rewrites the heartbeat file every second in the bot's 4-line format (float epoch first),
//! and an empty `requirements.txt`. Branches: `master` (healthy), `v2` (healthy, another commit) and `broken`
//! (exits at start). The repository lives in a host directory that the lab bind-mounts into every
//! VM at the same path, so the VMs clone it by path.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

static N: AtomicUsize = AtomicUsize::new(0);

use crate::Vm;

const MAIN: &str = r#"import logging, os, sys, time

# Stand-in for the bot. It logs like the bot's core/logging_setup.py (stdout, its format, no
# syslog priority prefix) and writes the heartbeat the real scheduler loop writes (truncate and
# rewrite). While /run/stand-in-bot/crash-after-1s exists it exits with status 1 one second after
# each start (a crash loop, for the tests); each new text in /run/stand-in-bot/log-error is logged
# once at level ERROR.
logging.basicConfig(
    level=logging.INFO,
    format="%(asctime)s [%(levelname)s] %(name)s - %(message)s",
    handlers=[logging.StreamHandler(sys.stdout)],
)
log = logging.getLogger("core.orchestrator")
log.info("Scheduler started with 0 jobs")
crash = os.path.exists("/run/stand-in-bot/crash-after-1s")
started = time.time()
said = None
while True:
    try:
        with open("/run/stand-in-bot/log-error") as f:
            text = f.read().strip()
    except OSError:
        text = None
    if text and text != said:
        logging.getLogger("faucets.firefaucet").error(text)
    said = text
    with open("/tmp/cryptobot_heartbeat", "w") as f:
        f.write(f"{time.time()}\n0 jobs\n0 running\nAccounts: None\n")
    if crash:
        time.sleep(max(0.0, started + 1 - time.time()))
        log.critical("Wallet RPC unreachable")
        sys.exit(1)
    time.sleep(1)
"#;

const BROKEN: &str = "raise SystemExit(\"stand-in bot: crash at start\")\n";

/// The repository and its commits.
#[derive(Debug)]
pub struct BotRepo {
    /// Temporary directory holding the repository (removed on drop).
    pub dir: PathBuf,
    /// Path of the repository (what `--repo-url` gets).
    pub path: PathBuf,
    /// `master`.
    pub good: String,
    /// `v2`.
    pub v2: String,
    /// `broken`.
    pub broken: String,
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=cryptobot",
            "-c",
            "user.email=bot@example.com",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl BotRepo {
    /// Creates the repository in a new temporary directory.
    pub fn create() -> BotRepo {
        let dir = Path::new("/var/tmp").join(format!(
            "cryptobot-repo-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("cryptobot");
        std::fs::create_dir_all(&path).expect("repo dir");
        git(&path, &["init", "-q", "-b", "master"]);
        std::fs::write(path.join("main.py"), MAIN).unwrap();
        std::fs::write(path.join("requirements.txt"), "").unwrap();
        git(&path, &["add", "-A"]);
        git(&path, &["commit", "-q", "-m", "stand-in bot"]);
        let good = git(&path, &["rev-parse", "HEAD"]);
        git(&path, &["checkout", "-q", "-b", "v2"]);
        std::fs::write(path.join("VERSION"), "2\n").unwrap();
        git(&path, &["add", "-A"]);
        git(&path, &["commit", "-q", "-m", "v2"]);
        let v2 = git(&path, &["rev-parse", "HEAD"]);
        git(&path, &["checkout", "-q", "-b", "broken", &good]);
        std::fs::write(path.join("main.py"), BROKEN).unwrap();
        git(&path, &["commit", "-q", "-am", "crash at start"]);
        let broken = git(&path, &["rev-parse", "HEAD"]);
        git(&path, &["checkout", "-q", "master"]);
        // Readable by the app user in the VMs.
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir)
            .status();
        BotRepo {
            dir,
            path,
            good,
            v2,
            broken,
        }
    }

    /// Adds a commit to `master` (the remote moves on); returns it.
    pub fn advance_master(&self) -> String {
        git(&self.path, &["checkout", "-q", "master"]);
        git(&self.path, &["commit", "-q", "--allow-empty", "-m", "next"]);
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&self.dir)
            .status();
        git(&self.path, &["rev-parse", "HEAD"])
    }

    /// `--repo-url`.
    pub fn url(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for BotRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prepares a fresh lab VM the way a new Azure VM looks: the `azureuser` account, and git
/// trusting the repository bind-mounted from the host (owned by another user there).
pub fn prepare_vm(vm: &Vm) {
    vm.sh("id azureuser >/dev/null 2>&1 || useradd -m -s /bin/bash azureuser; git config --system --add safe.directory '*'");
}

/// Makes the stand-in bot exit with status 1 one second after each start from now on.
pub fn crash_after_one_second(vm: &Vm, on: bool) {
    if on {
        vm.sh("mkdir -p /run/stand-in-bot && touch /run/stand-in-bot/crash-after-1s");
    } else {
        vm.sh("rm -f /run/stand-in-bot/crash-after-1s");
    }
}

/// A shell command listing every file a deploy could write on a VM, with its checksum, and the
/// units' states: equal before and after means the deploy changed nothing there.
pub const FOOTPRINT: &str = "find /home/azureuser/Repositories /etc/cryptobot /etc/systemd/system /usr/local/bin /var/lib/cryptobot-deploy -path '*/.venv' -prune -o -type f -print 2>/dev/null | sort | xargs -r sha256sum; systemctl is-active faucet_worker.service cryptobot-agent.service || true";

/// Makes the stand-in bot log `text` once at level ERROR.
pub fn log_error(vm: &Vm, text: &str) {
    vm.write_file("/run/stand-in-bot/log-error", text);
}

/// The commit checked out in the VM's checkout.
pub fn deployed_commit(vm: &Vm) -> String {
    vm.sh("git -C /home/azureuser/Repositories/cryptobot rev-parse HEAD")
        .trim()
        .to_owned()
}

/// An agent configuration with a short interval, so the deploy's health gate sees a fresh
/// heartbeat within a second or two.
pub const FAST_AGENT_CONFIG: &str = "[daemon]\ninterval = \"1s\"\n";
