#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs every test and
# the national rule pack's cases. Works on a fresh clone with ../shared beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/data/nhsa-batches ]; then
  echo "error: ../shared/data (the national knowledge batches) must sit beside this repository" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
JOBS="${JOBS:-2}"
export JOBS

# The Kafka end-to-end tests start a real broker (tansu 0.6.0) themselves.
bash scripts/install-tansu.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# tests/integration/ops_prometheus.rs runs a real Prometheus and promtool.
bash scripts/install-prometheus.sh

echo "== cargo test (workspace)"
cargo test --workspace -j"$JOBS" 2>&1

echo "== fundwatch rules test (national pack)"
# The binary `cargo test --workspace` just built for the end-to-end tests. `cargo run`
# would resolve features for the root package alone and rebuild DataFusion (~6 min cold).
"$CARGO_TARGET_DIR/debug/fundwatch" rules test rule-base/packs/national
