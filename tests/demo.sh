#!/bin/bash
# The demo: on a fresh Debian machine, installs what the lab needs, builds the binaries, then boots
# three simulated VMs in two resource groups behind the Azure emulator, deploys a stand-in bot and
# the agent with `cryptoctl deploy`, shows fleet health, crashes a worker and shows the agent
# bringing it back, and tears everything down (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh needs root: it installs packages (tests/setup.sh) and boots simulated VMs, which" >&2
  echo "needs namespaces, mounts and cgroups. Run it as root: tests/demo.sh" >&2
  exit 1
fi
collect() { bash tests/lab/lab.sh gc /tmp/cryptobot-lab >/dev/null 2>&1 || true; }
trap collect EXIT
trap 'echo; echo "interrupted: tearing down"; exit 130' INT TERM
echo "==== 0. Setup and build"
bash tests/setup.sh
cargo build --workspace --bins
cargo build -p cryptobot-tests --bin demo
target/debug/demo
