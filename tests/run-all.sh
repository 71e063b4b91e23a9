#!/bin/bash
# Runs every check and test of the project: formatting, lints, then all unit and integration tests
# (the integration tests boot simulated VMs, each a real systemd, and need root).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the tests boot simulated VMs and need root: run $0 as root" >&2; exit 1; }
bash tests/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# The agent users' VMs get, portable to glibc 2.28; tests/tests/dist.rs checks it. About 4 minutes
# from cold on 2 cores: 1 to install cargo-zigbuild and Zig when missing, 3 for the fat-LTO build.
cargo xtask dist
# Every fuzz target for 15 s (about 2.5 minutes with the build); see tests/fuzz/run.sh.
bash tests/fuzz/run.sh 15
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
