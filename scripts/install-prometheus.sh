#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian package `prometheus`) for the ops tests
# (tests/integration/ops_prometheus.rs: a real Prometheus scrapes a running demo;
# `promtool check rules`). Does nothing when both are already on PATH.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  echo "prometheus: $(command -v prometheus) ($(prometheus --version 2>&1 | head -1))"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "== installing prometheus (Debian package, with promtool) for the ops tests"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends prometheus
command -v prometheus >/dev/null && command -v promtool >/dev/null
