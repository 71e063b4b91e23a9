#!/bin/bash
# Simulated VMs for the tests: each VM is a real systemd as PID 1 of its own pid, mount, uts, ipc,
# cgroup and network namespaces, on a throw-away overlay of a root file system (the host's, or one of
# another Debian release built by rootfs.sh), with its own D-Bus system bus, journald and sshd.
#
#   lab.sh up N        boot vm1..vmN; writes $LAB_DIR/vmI/env (shell syntax) for each VM
#   lab.sh down        power every VM off and undo every mount, namespace and cgroup (idempotent)
#   lab.sh gc ROOT     tear down labs under ROOT whose owning process is gone
#   lab.sh init VM DIR (internal) PID 1 bootstrap of one VM
#
# Environment:
#   LAB_ID      prefix of host-global names (network namespaces, cgroup); [a-z0-9_]+, required
#   LAB_DIR     directory of this lab's state, required
#   LAB_OWNER   pid of the process that owns the lab (for gc); default: parent pid
#   LAB_ROOTFS  root file system under every VM's overlay (default /, the host's own); e.g. the path
#               `rootfs.sh bullseye` prints. Only LAB_BIND, LAB_FILES and LAB_UNITS bring host files in
#   LAB_BIND    space-separated host directories bind-mounted read-write at the same path in every VM
#   LAB_UNITS   directory whose files are copied to every VM's /etc/systemd/system and started
#   LAB_FILES   directory whose tree is copied into every VM's root (e.g. usr/local/lib/...)
#   LAB_SSH     1 (default) runs sshd in every VM on 10.200.0.(10+I):22 inside the lab's network
#   LAB_TIMEOUT seconds to wait for a VM to reach SystemState=running (default 30)
#
# The host is never reconfigured: /proc/sys stays read-only inside the VMs (only the VM's own
# /proc/sys/net is writable), capabilities that reach outside the namespaces are dropped, and all
# addresses live in network namespaces created here.
set -euo pipefail
die() { echo "lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (the lab creates namespaces, mounts and cgroups)"
cmd=${1:-}; shift || true

cgroup_root() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo /sys/fs/cgroup
  elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then echo /sys/fs/cgroup/unified
  else echo ""; fi
}

# ------------------------------------------------------------------------------------------ init
# Runs as PID 1 of the new pid namespace, inside a private mount namespace.
vm_init() {
  local name=$1 dir=$2 root=$2/root lower=${LAB_ROOTFS:-/}
  mount --make-rprivate /
  mount -t overlay "lab-$name" -o "lowerdir=$lower,upperdir=$dir/rw/upper,workdir=$dir/rw/work" "$root"
  mount --bind "$dir/run" "$root/run"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  # Kernel-wide settings must stay untouched: systemd would otherwise raise fs.file-max and
  # net.unix.max_dgram_qlen, and systemd-sysctl would apply sysctl.d to the host kernel.
  mount --bind "$root/proc/sys" "$root/proc/sys"
  mount -o remount,bind,ro "$root/proc/sys"
  mount --bind "$root/proc/sys/net" "$root/proc/sys/net"       # the VM's own network namespace
  mount -o remount,bind,rw "$root/proc/sys/net"
  if [ -e "$root/proc/sysrq-trigger" ]; then
    mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
    mount -o remount,bind,ro "$root/proc/sysrq-trigger"
  fi
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"   # read-only /sys: systemd runs as in a container
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"
  mount -t tmpfs -o mode=755,nosuid,size=4m labdev "$root/dev"
  (
    cd "$root/dev"
    mknod -m 666 null c 1 3; mknod -m 666 zero c 1 5; mknod -m 666 full c 1 7
    mknod -m 666 random c 1 8; mknod -m 666 urandom c 1 9; mknod -m 666 tty c 5 0
    mkdir -m 755 pts; mkdir -m 1777 shm
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts pts
    ln -s pts/ptmx ptmx; ln -s /proc/self/fd fd; ln -s /proc/self/fd/0 stdin
    ln -s /proc/self/fd/1 stdout; ln -s /proc/self/fd/2 stderr
    : > console; mount --bind "$dir/console.log" console
  )
  hostname "$name"
  # A fresh /tmp: tmpfiles' "D /tmp" would otherwise white out the host's /tmp in the overlay.
  mount -t tmpfs -o mode=1777,nosuid,nodev,size=512m labtmp "$root/tmp"
  for d in ${LAB_BIND:-}; do mkdir -p "$root$d"; mount --rbind "$d" "$root$d"; done
  cd "$root"; mkdir -p .oldroot; pivot_root . .oldroot; umount -l /.oldroot; rmdir /.oldroot
  ulimit -H -n 524288 2>/dev/null || true
  exec env -i container=lab TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    setpriv --bounding-set -sys_module,-sys_time,-sys_rawio,-sys_pacct,-syslog,-wake_alarm,-block_suspend,-mac_admin,-mac_override -- \
    /lib/systemd/systemd --system --unit=lab.target --show-status=no --log-target=journal-or-kmsg
}

# -------------------------------------------------------------------------------------------- up
# Units of the root file systems (the host's, bullseye's systemd 247, trixie's 257) that are
# host-global or pointless in a lab VM; masking a unit a release does not have is harmless.
MASKED="systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service
  proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount sys-kernel-debug.mount
  sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount
  systemd-journald-audit.socket systemd-random-seed.service systemd-timesyncd.service
  systemd-pstore.service systemd-remount-fs.service systemd-firstboot.service systemd-repart.service
  systemd-pcrphase.service systemd-pcrphase-sysinit.service ldconfig.service
  systemd-hwdb-update.service systemd-journal-catalog-update.service systemd-machine-id-commit.service
  systemd-udevd.service systemd-udev-trigger.service getty@tty1.service console-getty.service
  e2scrub_reap.service postgresql.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
  e2scrub_all.timer fstrim.timer man-db.timer ssh.service ssh.socket systemd-timedated.service
  cron.service exim4.service monit.service prometheus-node-exporter.service redis-server.service
  nginx.service memcached.service systemd-boot-system-token.service systemd-hibernate-clear.service
  systemd-pcrmachine.service systemd-pcrextend.socket systemd-pcrlock.socket systemd-tpm2-setup.service
  systemd-tpm2-setup-early.service systemd-sysext.service systemd-sysext.socket systemd-confext.service"

prepare_vm() {
  local i=$1 name=vm$1 dir=$LAB_DIR/vm$1
  local upper=$dir/rw/upper
  [ -e "$dir/env" ] && die "$name is already up"
  mkdir -p "$dir/rw" "$dir/root" "$dir/run"
  mount -t tmpfs -o mode=755,size=1g "lab-rw-$LAB_ID-$name" "$dir/rw"
  mount -t tmpfs -o mode=755,size=256m "lab-run-$LAB_ID-$name" "$dir/run"
  : > "$dir/console.log"
  mkdir -p "$dir/rw/work" "$upper/etc/systemd/system" "$upper/etc/systemd/journald.conf.d" \
           "$upper/etc/ssh" "$upper/root/.ssh"
  echo "$name" > "$upper/etc/hostname"
  tr -d - < /proc/sys/kernel/random/uuid > "$upper/etc/machine-id"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$name" > "$upper/etc/hosts"
  printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' > "$upper/etc/systemd/journald.conf.d/lab.conf"
  for u in $MASKED; do ln -sf /dev/null "$upper/etc/systemd/system/$u"; done
  local wants="dbus.socket dbus.service systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service"
  if [ "${LAB_SSH:-1}" = 1 ]; then
    ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$upper/etc/ssh/lab_host_ed25519_key"
    cp "$LAB_DIR/id_ed25519.pub" "$upper/root/.ssh/authorized_keys"
    chmod 700 "$upper/root/.ssh"; chmod 600 "$upper/root/.ssh/authorized_keys"
    cat > "$upper/etc/ssh/lab_sshd_config" <<CFG
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/lab_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile none
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
    cat > "$upper/etc/systemd/system/lab-sshd.service" <<'UNIT'
[Unit]
Description=OpenSSH server of the lab VM
After=network.target
[Service]
Type=notify
ExecStartPre=/bin/mkdir -p -m 0755 /run/sshd
ExecStart=/usr/sbin/sshd -D -e -f /etc/ssh/lab_sshd_config
KillMode=process
Restart=on-failure
UNIT
    wants="$wants lab-sshd.service"
  fi
  if [ -n "${LAB_FILES:-}" ]; then cp -a "$LAB_FILES/." "$upper/"; fi
  if [ -n "${LAB_UNITS:-}" ]; then
    local f
    for f in "$LAB_UNITS"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$upper/etc/systemd/system/"
      case "$f" in *.service|*.socket|*.timer|*.target) wants="$wants $(basename "$f")";; esac
    done
  fi
  printf '[Unit]\nDescription=Lab VM\nWants=%s\nAllowIsolate=yes\n' "$wants" > "$upper/etc/systemd/system/lab.target"

  local ip=10.200.0.$((10 + i))
  ip netns add "$LAB_ID-$name"
  ip -n "$LAB_ID-net" link add "v-$name" type veth peer name eth0 netns "$LAB_ID-$name"
  ip -n "$LAB_ID-net" link set "v-$name" master labbr0 up
  ip -n "$LAB_ID-$name" link set lo up
  ip -n "$LAB_ID-$name" addr add "$ip/24" dev eth0
  ip -n "$LAB_ID-$name" link set eth0 up
  ip -n "$LAB_ID-$name" route add default via 10.200.0.1

  mkdir -p "$CG/$LAB_ID/$name"
  setsid sh -c "echo \$\$ > '$CG/$LAB_ID/$name/cgroup.procs'; exec env LAB_BIND='${LAB_BIND:-}' LAB_ROOTFS='$ROOTFS' \
      nsenter --net=/run/netns/$LAB_ID-$name -- unshare --pid --fork --kill-child --mount --uts --ipc \
      --cgroup --propagation private '$SELF' init '$name' '$dir'" > "$dir/boot.log" 2>&1 < /dev/null &
  local upid=$! pid1="" n=0
  while [ -z "$pid1" ] && [ $n -lt 200 ]; do
    pid1=$(cat /proc/$upid/task/*/children 2>/dev/null | awk '{print $1}' || true)
    [ -n "$pid1" ] || { sleep 0.02; n=$((n + 1)); }
  done
  [ -n "$pid1" ] || { cat "$dir/boot.log" >&2; die "$name: unshare did not start"; }
  cat > "$dir/env.tmp" <<ENV
LAB_NAME=$name
LAB_UNSHARE_PID=$upid
LAB_PID=$pid1
LAB_VM_DIR=$dir
LAB_RUN=$dir/run
DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/run/dbus/system_bus_socket
LAB_JOURNAL_DIR=$dir/run/log/journal
LAB_IP=$ip
LAB_NETNS=$LAB_ID-$name
LAB_SWITCH_NETNS=$LAB_ID-net
ENV
  mv "$dir/env.tmp" "$dir/env"
}

wait_vm() {
  local name=vm$1 dir=$LAB_DIR/vm$1 state="" deadline
  deadline=$(( $(date +%s) + ${LAB_TIMEOUT:-30} ))
  while :; do
    if [ -S "$dir/run/dbus/system_bus_socket" ]; then
      state=$(busctl --address="unix:path=$dir/run/dbus/system_bus_socket" get-property \
        org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState \
        2>/dev/null | awk '{gsub(/"/, "", $2); print $2}') || true
      case "$state" in running|degraded) break;; esac
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$dir/boot.log" >&2; die "$name: not up (SystemState='$state')"; }
    sleep 0.02
  done
  if [ "${LAB_SSH:-1}" = 1 ]; then
    local pid; pid=$(awk -F= '$1=="LAB_PID"{print $2}' "$dir/env")
    until [ "$(nsenter -t "$pid" -a systemctl is-active lab-sshd.service 2>/dev/null)" = active ]; do
      [ "$(date +%s)" -lt "$deadline" ] || die "$name: sshd did not start"
      sleep 0.02
    done
  fi
}

lab_up() {
  local n=${1:-1} i
  : "${LAB_ID:?LAB_ID is required}" "${LAB_DIR:?LAB_DIR is required}"
  case "$LAB_ID" in *[!a-z0-9_]*) die "LAB_ID must match [a-z0-9_]+";; esac
  [ ${#LAB_ID} -le 12 ] || die "LAB_ID must be at most 12 characters (interface and namespace names)"
  grep -qw cgroup2 /proc/filesystems || die "the kernel has no cgroup2"
  grep -qw overlay /proc/filesystems || die "the kernel has no overlayfs"
  local b
  for b in unshare nsenter busctl ip setpriv; do command -v "$b" >/dev/null || die "missing $b"; done
  ROOTFS=${LAB_ROOTFS:-/}
  case "$ROOTFS" in /*) ;; *) die "LAB_ROOTFS must be an absolute path";; esac
  case "$ROOTFS" in *[,:\ \'\\]*) die "LAB_ROOTFS must not contain , : ' \\ or spaces (overlay options)";; esac
  [ -x "$ROOTFS/lib/systemd/systemd" ] || die "$ROOTFS has no /lib/systemd/systemd"
  if [ "${LAB_SSH:-1}" = 1 ]; then
    [ -x "$ROOTFS/usr/sbin/sshd" ] || die "sshd is missing in $ROOTFS: apt-get install openssh-server"
  fi
  for b in ${LAB_BIND:-}; do [ -d "$b" ] || die "LAB_BIND: $b is not a directory"; done
  mkdir -p "$LAB_DIR"
  echo "${LAB_OWNER:-$PPID}" > "$LAB_DIR/owner"
  echo "$LAB_ID" > "$LAB_DIR/id"
  CG=$(cgroup_root)
  if [ -z "$CG" ]; then
    CG=$LAB_DIR/cgroup2; mkdir -p "$CG"
    mountpoint -q "$CG" || mount -t cgroup2 none "$CG"
  fi
  echo "$CG" > "$LAB_DIR/cgroup"
  mkdir -p "$CG/$LAB_ID"
  if [ "${LAB_SSH:-1}" = 1 ] && [ ! -e "$LAB_DIR/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C lab -f "$LAB_DIR/id_ed25519"
  fi
  cat > "$LAB_DIR/ssh_config" <<CFG
Host *
  User root
  IdentityFile $LAB_DIR/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
CFG
  if [ ! -e "/run/netns/$LAB_ID-net" ]; then
    ip netns add "$LAB_ID-net"
    ip -n "$LAB_ID-net" link set lo up
    ip -n "$LAB_ID-net" link add labbr0 type bridge
    ip -n "$LAB_ID-net" addr add 10.200.0.1/24 dev labbr0
    ip -n "$LAB_ID-net" link set labbr0 up
  fi
  for i in $(seq 1 "$n"); do prepare_vm "$i"; done
  for i in $(seq 1 "$n"); do wait_vm "$i"; done
}

# ------------------------------------------------------------------------------------------ down
lab_down() {
  : "${LAB_DIR:?LAB_DIR is required}"
  [ -d "$LAB_DIR" ] || return 0
  local id cg dir pid upid
  id=$(cat "$LAB_DIR/id" 2>/dev/null || true)
  [ -n "$id" ] || die "$LAB_DIR has no id file"
  cg=$(cat "$LAB_DIR/cgroup" 2>/dev/null || true)
  for dir in "$LAB_DIR"/vm*; do    # power off (SIGRTMIN+4 is what systemctl poweroff sends)
    [ -f "$dir/env" ] || continue
    pid=$(awk -F= '$1=="LAB_PID"{print $2}' "$dir/env")
    kill -s RTMIN+4 "$pid" 2>/dev/null || true
  done
  for dir in "$LAB_DIR"/vm*; do
    [ -f "$dir/env" ] || continue
    pid=$(awk -F= '$1=="LAB_PID"{print $2}' "$dir/env")
    upid=$(awk -F= '$1=="LAB_UNSHARE_PID"{print $2}' "$dir/env")
    for _ in $(seq 1 100); do kill -0 "$upid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$upid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true   # ends every process of the VM's pid namespace
      for _ in $(seq 1 100); do kill -0 "$upid" 2>/dev/null || break; sleep 0.05; done
    fi
  done
  for dir in "$LAB_DIR"/vm*; do
    [ -d "$dir" ] || continue
    local name; name=$(basename "$dir")
    for m in "$dir/run" "$dir/rw" "$dir/root"; do
      if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
    done
    [ -e "/run/netns/$id-$name" ] && ip netns del "$id-$name"
    if [ -n "$cg" ] && [ -d "$cg/$id/$name" ]; then
      local f p
      for f in $(find "$cg/$id/$name" -name cgroup.procs); do
        for p in $(cat "$f"); do kill -9 "$p" 2>/dev/null || true; done
      done
      for _ in $(seq 1 50); do
        find "$cg/$id/$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [ -d "$cg/$id/$name" ] || break; sleep 0.05
      done
    fi
    rm -rf "$dir"
  done
  [ -n "$cg" ] && [ -d "$cg/$id" ] && rmdir "$cg/$id" 2>/dev/null
  [ -e "/run/netns/$id-net" ] && ip netns del "$id-net"
  if mountpoint -q "$LAB_DIR/cgroup2" 2>/dev/null; then umount "$LAB_DIR/cgroup2"; fi
  rm -rf "$LAB_DIR"
}

lab_gc() {
  local root=${1:?gc needs the labs root}
  [ -d "$root" ] || return 0
  local d owner
  for d in "$root"/*/; do
    [ -f "$d/owner" ] || continue
    owner=$(cat "$d/owner")
    if ! kill -0 "$owner" 2>/dev/null; then LAB_DIR=${d%/} lab_down || true; fi
  done
}

SELF=$(readlink -f "$0")
case "$cmd" in
  up) lab_up "$@";;
  down) lab_down;;
  gc) lab_gc "$@";;
  init) vm_init "$@";;
  *) die "usage: lab.sh up N | down | gc ROOT";;
esac
