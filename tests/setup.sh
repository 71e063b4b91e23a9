#!/bin/bash
# Installs what the tests need on a fresh Debian machine (idempotent; root). Packages are installed
# without starting their services on the host.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "setup.sh installs packages and must run as root" >&2; exit 1; }

packages=(
  openssh-server openssh-client   # sshd inside every lab VM, ssh from the host
  dbus iproute2 util-linux        # the VMs' system bus; namespaces, veth, nsenter/unshare/setpriv
  systemd                         # systemd 252 is PID 1 of every lab VM; journalctl, systemd-analyze
  python3                         # stand-in tooling inside the VMs
  python3-venv git                # cryptoctl deploy: the stand-in bot's checkout and venv
  prometheus                      # promtool checks the agent's /metrics exposition (service not started)
  chromium                        # headless browser that renders the agent's status page in a test
  ca-certificates
  polkitd                         # authorises the agent's user to restart the worker (deploy/cryptobot-agent.rules)
  procps curl openssl             # ps, curl and a test CA, in the tests
  debootstrap debian-archive-keyring  # lab VMs of other Debian releases (tests/lab/rootfs.sh)
  lintian                         # checks the Debian packages of cargo xtask dist
  bash-completion man-db          # the cryptoctl package's completion and man pages, found as a user would
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Keep package scripts from starting services on the host (there is no systemd to start them).
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; created_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) first" >&2; exit 1
fi

# A real gRPC health client for the agent's tests: Python's grpcio and grpcio-health-checking.
if ! python3 -c 'import grpc, grpc_health.v1.health_pb2' 2>/dev/null; then
  python3 -m pip --version >/dev/null 2>&1 \
    || { apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip; }
  python3 -m pip install --quiet grpcio grpcio-health-checking 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages grpcio grpcio-health-checking
fi

# The alerting tests run a real SMTP server (aiosmtpd) from Python.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m pip --version >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
  python3 -m pip install --quiet aiosmtpd || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi

# The Grafana dashboard tests (tests/tests/grafana_dashboards.rs): Grafana's published schema library
# @grafana/schema (the dashboard, panel options and Azure Monitor query types, generated from its CUE
# kinds), turned into JSON Schema by ts-json-schema-generator (2.4.0 still runs on Node.js 18/20) and
# checked with Python's jsonschema. Installed once, outside the checkout, in the lab's cache.
grafana_schema_dir=/var/cache/cryptobot-lab/grafana-schema
grafana_schema_pkgs=(@grafana/schema@13.2.3 ts-json-schema-generator@2.4.0 typescript@5.9.3)
command -v npm >/dev/null || { apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
if [ "$(cat "$grafana_schema_dir/.installed" 2>/dev/null)" != "${grafana_schema_pkgs[*]}" ]; then
  mkdir -p "$grafana_schema_dir"
  [ -f "$grafana_schema_dir/package.json" ] || echo '{"private": true}' > "$grafana_schema_dir/package.json"
  npm install --prefix "$grafana_schema_dir" --no-audit --no-fund --save-exact "${grafana_schema_pkgs[@]}" >/dev/null
  echo "${grafana_schema_pkgs[*]}" > "$grafana_schema_dir/.installed"
fi
python3 -c 'import jsonschema' 2>/dev/null \
  || python3 -m pip install --quiet jsonschema || python3 -m pip install --quiet --break-system-packages jsonschema

# Root file systems of the lab's other Debian releases (tests/lab/rootfs.sh), built once and cached
# so that the tests, which run in parallel, find them ready. Both build at once: about 100 s together
# on 2 cores (each alone takes 70 to 110 s, mostly downloading); instant once cached.
started=$(date +%s)
pids=()
for release in bullseye trixie; do
  bash "$(dirname "$0")/lab/rootfs.sh" "$release" > /dev/null 2> >(sed "s/^/$release: /" >&2) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
echo "setup: lab root file systems of bullseye and trixie ready in $(( $(date +%s) - started )) s"
