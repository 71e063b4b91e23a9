//! Rust handle on `lab/lab.sh`: boot VMs of a Debian release, run commands in them, tear them down.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

/// Root of every lab's directory on the host.
const LABS_ROOT: &str = "/tmp/cryptobot-lab";
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab.sh")
}

/// The Debian release a lab's VMs run: the root file system under their overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Release {
    /// The host's own root file system (Debian 12 in CI: systemd 252, polkit 122, glibc 2.36).
    #[default]
    Host,
    /// Debian 11: systemd 247, polkit 0.105 (`.pkla` files, no JavaScript rules), glibc 2.31,
    /// Python 3.9, OpenSSH 8.4.
    Bullseye,
    /// Debian 13: systemd 257, polkit 126, glibc 2.41, Python 3.13, OpenSSH 10.0.
    Trixie,
}

impl Release {
    /// Every release, the host's first.
    pub const ALL: [Release; 3] = [Release::Host, Release::Bullseye, Release::Trixie];

    /// `host`, or the Debian code name.
    pub fn name(self) -> &'static str {
        match self {
            Release::Host => "host",
            Release::Bullseye => "bullseye",
            Release::Trixie => "trixie",
        }
    }

    /// Whether the release's polkit reads JavaScript rules (`/etc/polkit-1/rules.d/*.rules`):
    /// polkit 0.105 only reads `.pkla` files.
    pub fn polkit_reads_js_rules(self) -> bool {
        self != Release::Bullseye
    }

    /// The root file system of the release's VMs: `/` for the host's, otherwise the one
    /// `lab/rootfs.sh` builds on first use (a few minutes, needs root and Debian's archive) and
    /// caches on the machine.
    pub fn rootfs(self) -> PathBuf {
        if self == Release::Host {
            return PathBuf::from("/");
        }
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/rootfs.sh"))
            .arg(self.name())
            .stderr(Stdio::inherit())
            .output()
            .expect("run lab/rootfs.sh");
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && !path.is_empty(),
            "no {} root file system (lab/rootfs.sh {} failed: see its output above)",
            self.name(),
            self.name()
        );
        PathBuf::from(path)
    }
}

/// Options of a lab.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    release: Release,
    vms: usize,
    ssh: bool,
    worker: bool,
    binds: Vec<PathBuf>,
}

impl Default for LabBuilder {
    fn default() -> Self {
        LabBuilder {
            release: Release::Host,
            vms: 1,
            ssh: false,
            worker: true,
            binds: vec![crate::profile_dir()],
        }
    }
}

impl LabBuilder {
    /// The Debian release of the VMs ([`Release::Host`] by default). Of the host's files, VMs of
    /// another release see only the bound directories: the profile directory with the workspace's
    /// binaries, [`crate::dist_dir`], and those of [`LabBuilder::bind`]. Binaries built on the host
    /// may need a newer glibc than the release has: use the portable ones of `cargo xtask dist`.
    pub fn release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }

    /// Number of VMs (vm1..vmN).
    pub fn vms(mut self, n: usize) -> Self {
        self.vms = n;
        self
    }

    /// Run sshd in every VM.
    pub fn ssh(mut self, on: bool) -> Self {
        self.ssh = on;
        self
    }

    /// Install and start the stand-in `faucet_worker.service` (on by default).
    pub fn worker(mut self, on: bool) -> Self {
        self.worker = on;
        self
    }

    /// Also bind-mount this host directory at the same path in every VM.
    pub fn bind(mut self, dir: impl Into<PathBuf>) -> Self {
        self.binds.push(dir.into());
        self
    }

    /// Boots the lab; panics with the lab's own message when it cannot.
    pub fn start(self) -> Lab {
        assert!(
            is_root(),
            "the lab needs root (namespaces, mounts, cgroups): run the tests as root"
        );
        std::fs::create_dir_all(LABS_ROOT).expect("create labs root");
        // Collect labs whose test process died without tearing them down.
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["gc", LABS_ROOT])
            .stdout(Stdio::null())
            .status();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("cb{}x{}", std::process::id() % 10_000_000, n % 100);
        let dir = Path::new(LABS_ROOT).join(&id);
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab");
        let rootfs = self.release.rootfs();
        // The portable agent's directory may not be built yet: bind it anyway, so that a test can
        // fill it and see it in its VMs.
        let dist = crate::dist_dir();
        std::fs::create_dir_all(&dist).unwrap_or_else(|e| panic!("create {}: {e}", dist.display()));
        let mut binds = self.binds;
        if !binds.contains(&dist) {
            binds.push(dist);
        }
        let binds: Vec<String> = binds.iter().map(|b| b.display().to_string()).collect();
        let mut cmd = Command::new("bash");
        cmd.arg(lab_script())
            .args(["up", &self.vms.to_string()])
            .env("LAB_ID", &id)
            .env("LAB_DIR", &dir)
            .env("LAB_OWNER", std::process::id().to_string())
            .env("LAB_SSH", if self.ssh { "1" } else { "0" })
            .env("LAB_ROOTFS", &rootfs)
            .env("LAB_BIND", binds.join(" "))
            .env("LAB_FILES", here.join("files"));
        if self.worker {
            cmd.env("LAB_UNITS", here.join("units"));
        }
        // Tear down whatever was started even if boot fails half-way.
        let mut lab = Lab {
            id,
            dir: dir.clone(),
            release: self.release,
            vms: Vec::new(),
        };
        let out = cmd.output().expect("run lab.sh");
        assert!(
            out.status.success(),
            "lab did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 1..=self.vms {
            lab.vms
                .push(Vm::from_env_file(&dir.join(format!("vm{i}")), &dir));
        }
        lab
    }
}

fn is_root() -> bool {
    // The effective uid of this process, from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A running lab; dropping it powers every VM off and removes every trace.
#[derive(Debug)]
pub struct Lab {
    id: String,
    dir: PathBuf,
    release: Release,
    vms: Vec<Vm>,
}

impl Lab {
    /// A lab with default options and `n` VMs.
    pub fn start(n: usize) -> Lab {
        LabBuilder::default().vms(n).start()
    }

    /// Options.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// VM number `i` (1-based, like its name).
    pub fn vm(&self, i: usize) -> &Vm {
        &self.vms[i - 1]
    }

    /// Every VM.
    pub fn vms(&self) -> &[Vm] {
        &self.vms
    }

    /// The lab's id (prefix of its network namespaces and cgroup).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Debian release its VMs run.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The lab's directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ssh client configuration for the VMs (key, no host-key prompts, batch mode).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// Tears the lab down now (also done on drop).
    pub fn shutdown(&mut self) {
        if !self.dir.exists() {
            return;
        }
        let out = Command::new("bash")
            .arg(lab_script())
            .arg("down")
            .env("LAB_DIR", &self.dir)
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!("lab down failed: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One simulated VM.
#[derive(Debug, Clone)]
pub struct Vm {
    /// `vm1`, `vm2`, ...
    pub name: String,
    /// The VM's PID 1, as seen from the host.
    pub pid: u32,
    /// D-Bus system bus address of the VM, usable from the host.
    pub dbus_address: String,
    /// The VM's journal directory on the host.
    pub journal_dir: PathBuf,
    /// Address of the VM inside the lab network.
    pub ip: String,
    /// The VM's network namespace.
    pub netns: String,
    /// The lab's switch namespace, from which every VM is reachable.
    pub switch_netns: String,
    /// The VM's `/run`, visible from the host (unix sockets in it can be connected to from here).
    pub run_dir: PathBuf,
    lab_dir: PathBuf,
}

impl Vm {
    fn from_env_file(vm_dir: &Path, lab_dir: &Path) -> Vm {
        let text = std::fs::read_to_string(vm_dir.join("env")).expect("VM env file");
        let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| env.get(k).copied().unwrap_or_default().to_owned();
        Vm {
            name: get("LAB_NAME"),
            pid: get("LAB_PID").parse().expect("LAB_PID"),
            dbus_address: get("DBUS_SYSTEM_BUS_ADDRESS"),
            journal_dir: PathBuf::from(get("LAB_JOURNAL_DIR")),
            ip: get("LAB_IP"),
            netns: get("LAB_NETNS"),
            switch_netns: get("LAB_SWITCH_NETNS"),
            run_dir: PathBuf::from(get("LAB_RUN")),
            lab_dir: lab_dir.to_owned(),
        }
    }

    /// A command that runs `program` inside the VM (all its namespaces, its root), as root, with a
    /// clean environment. Add variables with `.env()` after `env -i` by passing them as arguments:
    /// use [`Vm::command_with_env`] for that.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command_with_env(&[], program)
    }

    /// Like [`Vm::command`], with extra environment variables inside the VM.
    pub fn command_with_env(
        &self,
        env: &[(&str, &str)],
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-a", "--", "env", "-i"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("HOME=/root")
            .arg("LANG=C.UTF-8");
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `args` inside the VM and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().expect("a program");
        self.command(program).args(rest).output().expect("nsenter")
    }

    /// Runs a shell script inside the VM; panics with its output unless it succeeds; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.run(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "{}: `{script}` failed ({}): {}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl ARGS` inside the VM; panics unless it succeeds.
    pub fn systemctl(&self, args: &str) -> String {
        self.sh(&format!("systemctl --no-pager {args}"))
    }

    /// One property of a unit (`systemctl show -p P --value`).
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.systemctl(&format!("show -p {property} --value {unit}"))
            .trim()
            .to_owned()
    }

    /// The host path of `path` inside the VM (its root file system seen from the host).
    pub fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid, path))
    }

    /// Writes a file inside the VM, creating its directory.
    pub fn write_file(&self, path: &str, contents: impl AsRef<[u8]>) {
        let p = self.host_path(path);
        std::fs::create_dir_all(p.parent().expect("absolute path")).expect("mkdir in VM");
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("write {path} in {}: {e}", self.name));
    }

    /// Reads a file inside the VM.
    pub fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.host_path(path))
    }

    /// Installs (or replaces) a unit file and reloads systemd.
    pub fn install_unit(&self, name: &str, contents: &str) {
        self.write_file(&format!("/etc/systemd/system/{name}"), contents);
        self.systemctl("daemon-reload");
    }

    /// The unit's journal, read from the host (`journalctl -D`), as plain messages.
    pub fn journal(&self, unit: &str) -> String {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(&self.journal_dir)
            .args(["--no-pager", "-o", "cat", "-u", unit])
            .output()
            .expect("journalctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the unit's journal contains `needle` (journald stores lines asynchronously).
    pub fn wait_journal(&self, unit: &str, needle: &str, timeout: Duration) {
        crate::wait_until(
            &format!("{needle:?} in the journal of {unit}"),
            timeout,
            || self.journal(unit).contains(needle),
        );
    }

    /// An ssh command to this VM as root (the lab must have been started with ssh on). Add the
    /// remote command with `.arg()`.
    pub fn ssh(&self) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.switch_netns, "ssh", "-F"])
            .arg(self.lab_dir.join("ssh_config"))
            .arg(&self.ip);
        c.stdin(Stdio::null());
        c
    }

    /// Waits until the unit reports `ActiveState=state`.
    pub fn wait_active_state(&self, unit: &str, state: &str, timeout: Duration) {
        crate::wait_until(
            &format!("{unit} to be {state} in {}", self.name),
            timeout,
            || self.unit_property(unit, "ActiveState") == state,
        );
    }
}
