#!/bin/bash
# Root file systems of other Debian releases for the lab's VMs (the lower layer of their overlay,
# LAB_ROOTFS in lab.sh).
#
#   rootfs.sh RELEASE   RELEASE = bullseye | trixie; prints the root file system's path on stdout
#
# Built with debootstrap (minbase plus what a lab VM and the tests need) from Debian's archive, once:
# the result is cached in $LAB_ROOTFS_CACHE/RELEASE-HASH, where HASH covers the release, its package
# list and this script, so a change to any of them builds a new one. The build runs in a temporary
# directory that is renamed into place only when complete (a killed build never leaves a half cache)
# and holds a lock, so concurrent callers wait for one build instead of racing. Needs root to build,
# not to find a cached one. All progress goes to stderr.
#
# Environment:
#   LAB_ROOTFS_CACHE  cache directory (default /var/cache/cryptobot-lab/rootfs); old builds are not
#                     removed automatically: rm -rf it to reclaim the space
#   LAB_MIRROR        Debian archive (default http://deb.debian.org/debian)
set -euo pipefail
die() { echo "rootfs: $*" >&2; exit 1; }
release=${1:-}
cache=${LAB_ROOTFS_CACHE:-/var/cache/cryptobot-lab/rootfs}
mirror=${LAB_MIRROR:-http://deb.debian.org/debian}

# What every VM needs: its init, bus, logind and polkit, sshd, and what the tests run inside.
common=(systemd dbus libpam-systemd openssh-server python3 python3-venv git ca-certificates curl
  procps)
case "$release" in
  bullseye) packages=("${common[@]}" policykit-1) ;;   # systemd 247, polkit 0.105 (.pkla, no JS rules)
  trixie) packages=("${common[@]}" polkitd) ;;          # systemd 257, polkit 126
  *) die "usage: rootfs.sh bullseye|trixie" ;;
esac
# Commands the lab and the tests use inside a VM; the build fails when one is missing.
needed="sh bash env setpriv runuser nsenter sha256sum base64 gzip mktemp getent install find grep sed
  awk tar systemctl journalctl busctl dbus-daemon pkaction sshd ssh-keygen python3 git curl ps pgrep
  pkill kill date sleep"

hash=$({ echo "$release"; printf '%s\n' "${packages[@]}"; cat "${BASH_SOURCE[0]}"; } \
  | sha256sum | cut -c1-16)
dest=$cache/$release-$hash
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi   # renamed into place only when complete

[ "$(id -u)" = 0 ] || die "$dest is not built yet and building it needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
mkdir -p "$cache"
exec 9>"$cache/.$release.lock"
if ! flock -n 9; then
  echo "rootfs: waiting for another build of $release" >&2
  flock 9
fi
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi   # built while we waited

# Leftovers of killed builds of this release (no build of it can be running: we hold its lock).
for old in "$cache/.build-$release-"*; do
  [ -e "$old" ] && rm -rf --one-file-system "$old"
done
tmp=$(mktemp -d "$cache/.build-$release-XXXXXX")
chmod 755 "$tmp"   # the VMs' / : every user of a VM must reach its files
trap 'rm -rf --one-file-system "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
start=$(date +%s)
echo "rootfs: building $release into $dest (debootstrap from $mirror)" >&2
# In a private mount namespace: the /proc and /sys debootstrap mounts in the target vanish with it,
# even when the build is killed.
include=$(IFS=,; echo "${packages[*]}")
if ! unshare --mount --propagation private -- \
    debootstrap --variant=minbase --components=main --include="$include" \
    "$release" "$tmp" "$mirror" >&2; then
  [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
  die "debootstrap of $release failed"
fi

# Small and neutral: no package caches or lists, no docs, no host keys or identity shared by VMs.
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/debconf/*-old \
  "$tmp"/var/log/*.log "$tmp"/var/log/apt/* "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* \
  "$tmp"/usr/share/info/* "$tmp"/etc/ssh/ssh_host_*
: > "$tmp/etc/machine-id"
echo localhost > "$tmp/etc/hostname"

missing=$(chroot "$tmp" /bin/sh -c 'for c in "$@"; do command -v "$c" >/dev/null || echo "$c"; done' \
  sh $needed)
[ -z "$missing" ] || die "$release rootfs lacks: $missing"
{
  echo "rootfs: $release built in $(( $(date +%s) - start )) s, $(du -sh "$tmp" | cut -f1):"
  chroot "$tmp" /bin/sh -c 'systemctl --version | head -n1; ldd --version | head -n1
    python3 --version
    dpkg-query -W -f "\${db:Status-Abbrev} \${Package} \${Version}\n" 2>/dev/null \
      | awk "\$1 == \"ii\" && \$2 ~ /^(polkitd|policykit-1|openssh-server|dbus)\$/ {print \$2, \$3}"' \
    | sed 's/^/  /'
} >&2
mv -T "$tmp" "$dest"
trap - EXIT
echo "$dest"
