#!/usr/bin/env bash
# Swap under load (issue 7): `fundwatch serve` on a registry with two versions of
# the national pack; `loadgen` at a fixed rate measures a steady run, then the
# same load while the pack is activated / rolled back through the admin endpoint
# every SWAP_EVERY seconds. Prints both loadgen summaries and the p99 ratio.
#
#   PROFILE=release RATE=500 DURATION=30s bash benches/swap_under_load.sh
#
# Needs target/$PROFILE/{fundwatch,loadgen} (cargo build [--release] --workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-debug}
RATE=${RATE:-200}
DURATION=${DURATION:-20s}
SWAP_EVERY=${SWAP_EVERY:-2}
PORT=${PORT:-18480}
TARGET=${CARGO_TARGET_DIR:-target}
FW=$TARGET/$PROFILE/fundwatch
LOADGEN=$TARGET/$PROFILE/loadgen
ADMIN=swap-bench-admin-key-0123456789
KEY=swap-bench-hospital-key-0123456789
WORK=$(mktemp -d)
trap 'kill $SERVE 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Two packs that differ in one rule's message.
for v in 1.0.0 2.0.0; do
  cp -r rule-base/packs/national "$WORK/pack-$v"
  sed -i "0,/^version = .*/s//version = \"$v\"/" "$WORK/pack-$v/pack.toml"
done
sed -i '0,/^message = "/s//message = "[v2] /' "$WORK/pack-2.0.0/rules/GZ10000301004000.toml"
for v in 1.0.0 2.0.0; do "$FW" rules publish --registry "$WORK/reg" "$WORK/pack-$v" >/dev/null; done
"$FW" rules activate --registry "$WORK/reg" national@1.0.0 >/dev/null 2>&1

cat > "$WORK/serve.toml" <<EOF
[http]
addr = "127.0.0.1:$PORT"
admdvs = "430796"
[engine]
registry = "$WORK/reg"
[store]
kind = "memory"
[[auth.keys]]
role = "institution"
fixmedins_code = "H43079600001"
key = "$KEY"
[[auth.keys]]
role = "admin"
name = "bench"
key = "$ADMIN"
EOF
"$FW" serve --config "$WORK/serve.toml" --log-format text 2>"$WORK/serve.log" &
SERVE=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done

run() { "$LOADGEN" --addr "127.0.0.1:$PORT" --key "$KEY" --rate "$RATE" --duration "$DURATION" --warmup 3s --connections 16 --json; }

echo "== steady: $RATE requests/s for $DURATION ($PROFILE)"
STEADY=$(run | tee /dev/stderr | tail -1)

echo "== the same load, activating / rolling back every ${SWAP_EVERY}s"
(
  n=0
  while true; do
    sleep "$SWAP_EVERY"
    if (( n % 2 == 0 )); then
      curl -sf -H "x-fundwatch-key: $ADMIN" -d '{"version":"national@2.0.0"}' \
        "http://127.0.0.1:$PORT/api/v1/admin/rules/activate" >/dev/null && echo "swap $n: activate 2.0.0" >&2
    else
      curl -sf -H "x-fundwatch-key: $ADMIN" -X POST \
        "http://127.0.0.1:$PORT/api/v1/admin/rules/rollback" >/dev/null && echo "swap $n: rollback" >&2
    fi
    n=$((n + 1))
  done
) &
SWAPPER=$!
SWAPPING=$(run | tee /dev/stderr | tail -1)
kill $SWAPPER 2>/dev/null || true
SWAPS=$("$FW" rules log --registry "$WORK/reg" --limit 1000 | grep -c bench || true)

echo "== summary"
jq -n --argjson s "$STEADY" --argjson w "$SWAPPING" --arg swaps "$SWAPS" '{
  swaps: ($swaps|tonumber),
  steady:   {server_p99_ms: $s.server_ms.p99, client_p99_ms: $s.client_ms.p99, due_p99_ms: $s.due_ms.p99, errors: $s.errors, skipped: $s.skipped, shed: $s.shed, checked: $s.checked},
  swapping: {server_p99_ms: $w.server_ms.p99, client_p99_ms: $w.client_ms.p99, due_p99_ms: $w.due_ms.p99, errors: $w.errors, skipped: $w.skipped, shed: $w.shed, checked: $w.checked},
  server_p99_ratio: ($w.server_ms.p99 / $s.server_ms.p99),
  client_p99_ratio: ($w.client_ms.p99 / $s.client_ms.p99)
}'
