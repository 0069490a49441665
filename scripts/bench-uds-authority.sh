#!/usr/bin/env bash
# The per-request cost of the Unix-socket `:authority` adapter (issue 14 §2): the same release
# binary, two daemons on copies of one store, arm A with the default (adapter on) and arm B with
# WARDEN_UDS_AUTHORITY=strict (adapter off), measured by `warden bench` in alternating rounds
# (A B A B …) so drift on a shared machine hits both arms alike. Prints one line per round:
# `round arm requests_per_s p50_us p99_us errors`. Compare the difference between the arms with
# the spread within each arm.
#
# Knobs (env): ROUNDS=10 SECS=10 CONC=4 WARDEN_BIN=<skip the build> OUT=<new temp dir>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-10}; SECS=${SECS:-10}; CONC=${CONC:-4}
OUT=${OUT:-$(mktemp -d /tmp/warden-uds-ab.XXXXXX)}
if [ -z "${WARDEN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --quiet)
  WARDEN_BIN="$ROOT/target/release/warden"
fi
W=$WARDEN_BIN
SHAPE=(--orgs 100 --members 100 --teams 10 --apps 20)
mkdir -p "$OUT/a" "$OUT/b"
cp -r "$ROOT/policies" "$OUT/policies"
"$W" gen-directory --out "$OUT/dir.json" "${SHAPE[@]}" >/dev/null
"$W" import "$OUT/dir.json" --data "$OUT/a" >/dev/null
cp "$OUT"/a/* "$OUT/b/"
env -u WARDEN_UDS_AUTHORITY "$W" serve --data "$OUT/a" --policies "$OUT/policies" --no-tcp \
  --listen "unix:$OUT/a/warden.sock" 2>"$OUT/a.log" & PA=$!
WARDEN_UDS_AUTHORITY=strict "$W" serve --data "$OUT/b" --policies "$OUT/policies" --no-tcp \
  --listen "unix:$OUT/b/warden.sock" 2>"$OUT/b.log" & PB=$!
trap 'kill $PA $PB 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do [ -S "$OUT/a/warden.sock" ] && [ -S "$OUT/b/warden.sock" ] && break; sleep 0.2; done
echo "round arm requests_per_s p50_us p99_us errors"
for r in $(seq "$ROUNDS"); do
  for arm in a b; do
    "$W" bench --connect "unix:$OUT/$arm/warden.sock" -c "$CONC" --duration "$SECS" --warmup 1 --json "${SHAPE[@]}" |
      python3 -c 'import json,sys; j=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], round(j["requests_per_s"]), j["latency"]["p50_us"], j["latency"]["p99_us"], j["errors"])' "$r" "$arm"
  done
done
