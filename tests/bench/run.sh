#!/bin/bash
# Runs the benchmark suite (not part of the test run). As root:
#   tests/bench/run.sh            # full run: 50 kills, 10 s wrk runs, 10 min footprint, ...
#   tests/bench/run.sh --quick    # shorter: 10 kills, 5 s wrk runs, 1 min footprint, ...
#   tests/bench/run.sh --only crash,http,startup,footprint,growth,fleet [--quick]
# Installs wrk, monit and prometheus-node-exporter (their services are not started: monit and the
# exporter run only inside lab VMs, in the foreground of a transient unit, while measured), builds
# the release binaries and writes the figures to tests/bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "the benchmarks boot simulated VMs and need root: run $0 as root" >&2; exit 1; }
bash tests/setup.sh
missing=()
for p in wrk monit prometheus-node-exporter; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # keep the packages' services from starting on this machine while they are installed
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  [ "$had_policy" = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  [ "$had_policy" = 1 ] || rm -f "$policy"
fi
cargo build --release --workspace --bins
exec target/release/bench --results tests/bench/RESULTS.md "$@"
