//! The lab itself: VMs boot with their own systemd, bus, journal and sshd, on the host's root file
//! system or another Debian release's; the host's kernel settings cannot be changed from inside;
//! labs are independent and always torn down.

use std::{path::Path, time::Duration};

use cryptobot_tests::{Lab, Release, dist_dir, profile_dir, wait_until};

#[test]
fn vms_have_their_own_systemd_bus_journal_and_sshd() {
    let lab = Lab::builder().vms(2).ssh(true).start();
    for vm in lab.vms() {
        assert_eq!(vm.sh("hostname").trim(), vm.name);
        assert_eq!(vm.sh("cat /proc/1/comm").trim(), "systemd");
        assert_eq!(
            vm.unit_property("faucet_worker.service", "ActiveState"),
            "active"
        );
        assert!(vm.dbus_address.starts_with("unix:path="));
        // the bus is reachable from the host too
        let out = std::process::Command::new("busctl")
            .arg(format!("--address={}", vm.dbus_address))
            .args([
                "get-property",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
            ])
            .args(["org.freedesktop.systemd1.Manager", "SystemState"])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout);
        assert!(
            state.contains("running") || state.contains("degraded"),
            "{state}"
        );
    }
    // ssh reaches each VM by its own address
    let out = lab
        .vm(2)
        .ssh()
        .arg("hostname; systemctl is-active faucet_worker")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "vm2\nactive\n");
}

#[test]
fn stand_in_worker_writes_a_float_heartbeat_and_logs_errors() {
    let lab = Lab::start(1);
    let vm = lab.vm(1);
    wait_until("a heartbeat", Duration::from_secs(5), || {
        vm.read_file("/tmp/cryptobot_heartbeat").is_ok()
    });
    let text = String::from_utf8(vm.read_file("/tmp/cryptobot_heartbeat").unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    let (secs, frac) = lines[0].split_once('.').expect("a float epoch");
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(frac.len(), 6);
    assert_eq!(&lines[1..], ["0 jobs", "0 running", "Accounts: None"]);

    vm.write_file("/run/fake-worker/errors", "2");
    wait_until(
        "two error lines in the journal",
        Duration::from_secs(10),
        || {
            // logged like the bot: "[ERROR]" in the text, stored at priority info
            let out = vm.run(&[
                "journalctl",
                "-u",
                "faucet_worker",
                "-o",
                "cat",
                "--no-pager",
            ]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("[ERROR]") && l.contains("simulated error"))
                .count()
                == 2
        },
    );
}

#[test]
fn proc_sys_is_read_only_inside() {
    let lab = Lab::start(1);
    let out = lab
        .vm(1)
        .run(&["sh", "-c", "echo 0 > /proc/sys/fs/protected_regular"]);
    assert!(
        !out.status.success(),
        "a VM could write a host kernel setting"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
}

#[test]
fn two_labs_at_once_do_not_collide_and_both_are_torn_down() {
    let a = Lab::start(1);
    let b = Lab::start(1);
    assert_ne!(a.id(), b.id());
    assert_ne!(a.vm(1).dbus_address, b.vm(1).dbus_address);
    // each lab's vm1 has its own journal and machine
    let ida = a.vm(1).sh("cat /etc/machine-id");
    let idb = b.vm(1).sh("cat /etc/machine-id");
    assert_ne!(ida, idb);
    let dirs = [a.dir().to_owned(), b.dir().to_owned()];
    let netns = [a.vm(1).netns.clone(), b.vm(1).netns.clone()];
    drop(a);
    drop(b);
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    for n in &netns {
        assert!(
            !Path::new("/run/netns").join(n).exists(),
            "netns {n} left behind"
        );
    }
}

#[test]
fn a_panicking_test_still_tears_its_lab_down() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let lab = Lab::start(1);
        tx.send((lab.dir().to_owned(), lab.vm(1).pid)).unwrap();
        panic!("simulated test failure");
    })
    .join();
    assert!(result.is_err());
    let (dir, pid) = rx.recv().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "VM init {pid} still running"
    );
}

/// What a VM of a release must report about itself.
struct Expected {
    debian: &'static str,
    systemd: &'static str,
    polkit: &'static str,
    glibc: &'static str,
    python: &'static str,
}

/// A VM of `release` boots its own systemd as PID 1, answers ssh, runs the release's systemd,
/// polkit, glibc and Python, runs the stand-in worker, and sees the bound host directories.
fn boots_on(release: Release, want: &Expected) {
    let lab = Lab::builder().release(release).ssh(true).start();
    assert_eq!(lab.release(), release);
    let vm = lab.vm(1);
    assert_eq!(vm.sh("cat /proc/1/comm").trim(), "systemd");
    // PID 1 is the release's systemd, asked over its bus from the host
    let out = std::process::Command::new("busctl")
        .arg(format!("--address={}", vm.dbus_address))
        .args([
            "get-property",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
        ])
        .args(["org.freedesktop.systemd1.Manager", "Version"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let major = want.systemd.trim_start_matches("systemd ");
    assert!(
        version.starts_with(&format!("s \"{major}")),
        "{}: PID 1 is systemd {version}",
        release.name()
    );

    let script = format!(
        "cat /etc/debian_version; systemctl --version | head -n1; pkaction --version; \
         ldd --version | head -n1; python3 --version; systemctl is-active faucet_worker; \
         test -d {} && test -d {} && echo binds",
        profile_dir().display(),
        dist_dir().display()
    );
    let out = vm.ssh().arg(script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {text}{}",
        release.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{}: {text}", release.name());
    assert!(lines[0].starts_with(want.debian), "{text}");
    assert!(
        lines[1].starts_with(&format!("{} (", want.systemd)),
        "{text}"
    );
    assert_eq!(lines[2], want.polkit, "{text}");
    assert!(lines[3].ends_with(&format!(" {}", want.glibc)), "{text}");
    assert!(lines[4].starts_with(want.python), "{text}");
    assert_eq!(&lines[5..], ["active", "binds"], "{text}");

    // the host reads the release's journal, and the host's kernel settings stay out of reach
    vm.wait_journal(
        "faucet_worker.service",
        "fake worker started",
        Duration::from_secs(10),
    );
    let out = vm.run(&["sh", "-c", "echo 0 > /proc/sys/fs/protected_regular"]);
    assert!(
        !out.status.success(),
        "{}: a VM could write a host kernel setting",
        release.name()
    );
}

#[test]
fn bullseye_vms_run_debian_11() {
    boots_on(
        Release::Bullseye,
        &Expected {
            debian: "11.",
            systemd: "systemd 247",
            polkit: "pkaction version 0.105",
            glibc: "2.31",
            python: "Python 3.9.",
        },
    );
}

#[test]
fn trixie_vms_run_debian_13() {
    boots_on(
        Release::Trixie,
        &Expected {
            debian: "13.",
            systemd: "systemd 257",
            polkit: "pkaction version 126",
            glibc: "2.41",
            python: "Python 3.13.",
        },
    );
}

#[test]
fn releases_have_names_and_the_host_is_the_default() {
    let names: Vec<&str> = Release::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["host", "bullseye", "trixie"]);
    assert_eq!(Release::default(), Release::Host);
    assert_eq!(Release::Host.rootfs(), Path::new("/"));
}
