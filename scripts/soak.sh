#!/usr/bin/env bash
# Soak at saturation: Check load over the Unix socket and over TCP at once, plus a stream
# of directory writes, for DURATION seconds (default 60) against one release daemon.
# Reports errors (by gRPC code), p50/p99 per transport, writes done, RSS before/after and
# whether the live index still equals a rebuild from the tables (admin check-index).
#
# Usage: scripts/soak.sh [DURATION_S]     env: ORGS (1000), MEMBERS (100), UDS_C (32),
#        TCP_C (16), MAX_IN_FLIGHT (1024), RSS_GROWTH_MAX_MIB (64),
#        WARDEN_BIN (default: builds target/release/warden)
# Needs a quiet machine: the figures mean nothing while other builds run. Exit code 1 if
# any call failed for a reason other than RESOURCE_EXHAUSTED (the documented refusal at
# capacity), any write failed, the index check failed, or the server's resident memory
# grew by more than RSS_GROWTH_MAX_MIB over the soak (the writes add a few KiB each).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${1:-60}"
ORGS="${ORGS:-1000}"; MEMBERS="${MEMBERS:-100}"
UDS_C="${UDS_C:-32}"; TCP_C="${TCP_C:-16}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-1024}"
RSS_GROWTH_MAX_MIB="${RSS_GROWTH_MAX_MIB:-64}"
OUT="$(mktemp -d /tmp/warden-soak.XXXXXX)"
if [ -z "${WARDEN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --quiet)
  WARDEN_BIN="$ROOT/target/release/warden"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOCK="$OUT/warden.sock"

"$WARDEN_BIN" gen-directory --orgs "$ORGS" --members "$MEMBERS" --out "$OUT/directory.json" >/dev/null
"$WARDEN_BIN" import "$OUT/directory.json" --data "$OUT/data" >/dev/null
WARDEN_LOG=warn "$WARDEN_BIN" serve --data "$OUT/data" --policies "$ROOT/policies" \
  --listen "unix:$SOCK" --listen "tcp:127.0.0.1:$PORT" --max-in-flight "$MAX_IN_FLIGHT" \
  >"$OUT/warden.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  "$WARDEN_BIN" admin stats --connect "unix:$SOCK" >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { echo "warden serve exited; see $OUT/warden.log" >&2; exit 1; }
  sleep 0.1
done
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
RSS0=$(rss)

SHAPE=(--orgs "$ORGS" --members "$MEMBERS" --duration "$DURATION" --json)
"$WARDEN_BIN" bench --connect "unix:$SOCK" -c "$UDS_C" --connections 4 "${SHAPE[@]}" >"$OUT/uds.json" &
B1=$!
"$WARDEN_BIN" bench --connect "tcp:127.0.0.1:$PORT" -c "$TCP_C" --connections 2 "${SHAPE[@]}" >"$OUT/tcp.json" &
B2=$!
# The write stream: a new user joins org0 (by its admin), one after another.
WRITES=0; WRITE_ERRORS=0; END=$((SECONDS + DURATION)); i=0
while [ $SECONDS -lt $END ]; do
  i=$((i + 1)); u="soak$i"
  if "$WARDEN_BIN" user upsert "$u" --email "$u@example.com" --actor "$u" --connect "unix:$SOCK" >/dev/null 2>&1 &&
     "$WARDEN_BIN" member add org0 "$u" --role org_user --actor user0x0 --connect "unix:$SOCK" >/dev/null 2>&1; then
    WRITES=$((WRITES + 2))
  else
    WRITE_ERRORS=$((WRITE_ERRORS + 1))
  fi
done
wait $B1 $B2
RSS1=$(rss)
INDEX=$("$WARDEN_BIN" admin check-index --connect "unix:$SOCK" | tail -1 || true)

python3 - "$OUT" "$RSS0" "$RSS1" "$WRITES" "$WRITE_ERRORS" "$INDEX" "$RSS_GROWTH_MAX_MIB" <<'PY'
import json, sys
out, rss0, rss1, writes, werr, index, growth_max = sys.argv[1:]
grew = (int(rss1) - int(rss0)) / 1024
bad = int(werr) > 0 or index != "consistent" or grew > float(growth_max)
for name in ("uds", "tcp"):
    r = json.load(open(f"{out}/{name}.json"))
    other = {k: v for k, v in r["errors_by_code"].items() if k not in ("ResourceExhausted", "resource_exhausted")}
    bad |= bool(other)
    l = r["latency"]
    print(f"{name}: {r['requests']} calls in {r['seconds']:.0f} s ({r['requests_per_s']:.0f}/s), "
          f"errors {r['errors']} {dict(r['errors_by_code'])}, p50 {l['p50_us']:.0f} µs, p99 {l['p99_us']:.0f} µs, max {l['max_us']:.0f} µs")
print(f"writes: {writes} committed, {werr} failed")
print(f"RSS: {int(rss0)/1024:.0f} MiB -> {int(rss1)/1024:.0f} MiB ({grew:+.0f} MiB; bound +{growth_max} MiB)")
print(f"index after the soak: {index}")
print(f"work dir: {out}")
sys.exit(1 if bad else 0)
PY
