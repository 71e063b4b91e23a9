#!/bin/bash
# Runs every fuzz target for a bounded time: tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 20 s each, every target). cargo-fuzz needs nightly compiler features; on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. The code under test forbids `unsafe`, so the targets
# are built without a sanitizer (-s none): libFuzzer still finds panics, overflows (debug
# assertions are on), runaway recursion and allocations, and the build is much faster.
# A crash leaves its input in tests/fuzz/artifacts/TARGET/ and makes this script fail; turn it into
# a unit test next to the parser before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  if [ "$target" = config ]; then
    cp ../../deploy/agent.toml "corpus/$target/deploy-agent.toml"
  fi
  if [ -d "seeds/$target" ]; then
    cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  fi
  echo "== fuzz $target for ${seconds}s"
  if ! cargo fuzz run -s none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      2>&1 | tail -n 20; then
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under tests/fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
