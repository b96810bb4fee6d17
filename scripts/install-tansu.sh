#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker (0.6.0) that tests/kafka_*.rs start
# themselves. Cached: does nothing when `tansu --version` already says 0.6.0.
# Installs into cargo's bin directory ($CARGO_HOME/bin, normally ~/.cargo/bin),
# which persists across runs; a cold build takes about 10 minutes on 2 cores.
set -euo pipefail

VERSION=0.6.0
BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$BIN_DIR:$PATH"

if tansu --version 2>/dev/null | grep -q "$VERSION"; then
  echo "tansu $VERSION: $(command -v tansu)"
  exit 0
fi

echo "== installing tansu $VERSION into $BIN_DIR (broker for the Kafka tests; one-time, ~10 min)"
start=$(date +%s)
# Build in cargo's own temporary directory, not the project's target dir.
env -u CARGO_TARGET_DIR nice -n 10 \
  cargo install tansu --version "$VERSION" --locked --features dynostore -j"${JOBS:-2}"
tansu --version | grep -q "$VERSION" || {
  echo "error: tansu $VERSION was installed but \`tansu --version\` does not say so" >&2
  exit 1
}
echo "tansu $VERSION installed in $(( $(date +%s) - start )) s"
