#!/usr/bin/env bash
# Policy edits under load (issue 7): how long until a saved edit decides, and whether any
# request fails while the policy is swapped underneath a saturating load.
#
# Generates and imports a directory (ORGS x MEMBERS; 1M memberships by default), starts
# `warden serve` (release build) on a Unix socket with a private copy of policies/, starts
# `warden bench` at CONC concurrent Check clients for DURATION s, and meanwhile makes EDITS
# edits to policy.csv, alternately adding and removing one deny line
# (`p, role:org_user, apps/:app, app:read, org, deny`). After each save it polls
# `warden check` for an org user's `app:read` until the decision flips, and records the
# time from the write to the first flipped answer (the watcher's debounce included; each
# poll is a fresh `warden check` process, so figures carry a few ms of process start-up).
# Prints the edit→visible latencies (p50, max) and the load generator's errors, which must
# be zero.
#
# Knobs (env): ORGS=10000 MEMBERS=100 TEAMS=10 APPS=20 EDITS=20 CONC=32 DURATION=40
#   SERVER_CPUS=0 LOADGEN_CPUS=1 ('' = unpinned) OUT=<new temp dir> WARDEN_BIN=<skip the build>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ORGS=${ORGS:-10000}; MEMBERS=${MEMBERS:-100}; TEAMS=${TEAMS:-10}; APPS=${APPS:-20}
EDITS=${EDITS:-20}; CONC=${CONC:-32}; DURATION=${DURATION:-40}
SERVER_CPUS=${SERVER_CPUS-0}; LOADGEN_CPUS=${LOADGEN_CPUS-1}
OUT=${OUT:-$(mktemp -d /tmp/warden-reload.XXXXXX)}
mkdir -p "$OUT"
SERVER_PIN=(); [ -z "$SERVER_CPUS" ] || SERVER_PIN=(taskset -c "$SERVER_CPUS")
LOADGEN_PIN=(); [ -z "$LOADGEN_CPUS" ] || LOADGEN_PIN=(taskset -c "$LOADGEN_CPUS")

if [ -z "${WARDEN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  WARDEN_BIN=$TARGET/release/warden
fi
SHAPE=(--orgs "$ORGS" --members "$MEMBERS" --teams "$TEAMS" --apps "$APPS")
echo "== $(date -u +%T) directory: $ORGS orgs x $MEMBERS members"
"$WARDEN_BIN" gen-directory "${SHAPE[@]}" --out "$OUT/directory.json" > /dev/null
rm -rf "$OUT/data" && mkdir -p "$OUT/data"
"$WARDEN_BIN" import "$OUT/directory.json" --data "$OUT/data" > /dev/null
# An org user and an app of their org, from the dump itself.
read -r USER_ID ORG_ID APP_ID < <(python3 - "$OUT/directory.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m = next(m for m in d["memberships"] if m["role"] == "org_user")
app = next(a for a in d["apps"] if a["owner"] == {"kind": "org", "id": m["org"]})
print(m["user"], m["org"], app["id"])
EOF
)
rm -f "$OUT/directory.json"
rm -rf "$OUT/policies" && cp -r "$ROOT/policies" "$OUT/policies"
POLICY=$OUT/policies/policy.csv
cp "$POLICY" "$OUT/policy.orig"
DENY_LINE='p, role:org_user, apps/:app, app:read, org, deny'

SOCK=$OUT/warden.sock
WARDEN_PID=; BENCH_PID=
cleanup() {
  [ -z "$BENCH_PID" ] || kill "$BENCH_PID" 2>/dev/null || true
  if [ -n "$WARDEN_PID" ] && kill -0 "$WARDEN_PID" 2>/dev/null; then kill -TERM "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
WARDEN_LOG=warn "${SERVER_PIN[@]}" "$WARDEN_BIN" serve --data "$OUT/data" --policies "$OUT/policies" \
  --listen "unix:$SOCK" > "$OUT/warden.log" 2>&1 &
WARDEN_PID=$!
for _ in $(seq 1 600); do
  "$WARDEN_BIN" admin stats --connect "unix:$SOCK" > /dev/null 2>&1 && break
  kill -0 "$WARDEN_PID" 2>/dev/null || { echo "warden serve exited; see $OUT/warden.log" >&2; exit 1; }
  sleep 0.1
done

check() { # exit 0 allow, 1 deny
  "$WARDEN_BIN" check --connect "unix:$SOCK" --subject "$USER_ID" --org "$ORG_ID" \
    --resource "apps/$APP_ID" --action app:read > /dev/null 2>&1
}
check || { echo "expected $USER_ID to read apps/$APP_ID before any edit" >&2; exit 1; }

echo "== $(date -u +%T) load: $CONC concurrent Check clients for ${DURATION}s; $EDITS edits meanwhile"
"${LOADGEN_PIN[@]}" "$WARDEN_BIN" bench --connect "unix:$SOCK" "${SHAPE[@]}" --concurrency "$CONC" \
  --duration "$DURATION" --warmup 1 --json > "$OUT/bench.json" &
BENCH_PID=$!
sleep 2
: > "$OUT/latencies_ms"
for i in $(seq 1 "$EDITS"); do
  if [ $((i % 2)) = 1 ]; then
    want=1; { cat "$OUT/policy.orig"; echo "$DENY_LINE"; } > "$POLICY.tmp"
  else
    want=0; cp "$OUT/policy.orig" "$POLICY.tmp"
  fi
  start=$(date +%s%N)
  mv "$POLICY.tmp" "$POLICY" # an editor's write-rename
  while :; do
    rc=0; check || rc=$?
    [ "$rc" = "$want" ] && break
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 10000 ] || { echo "edit $i not visible after 10 s" >&2; exit 1; }
  done
  echo $(( ($(date +%s%N) - start) / 1000000 )) >> "$OUT/latencies_ms"
  sleep 0.3
done
if ! kill -0 "$BENCH_PID" 2>/dev/null; then echo "!! the load ended before the edits did; raise DURATION" >&2; fi
wait "$BENCH_PID"; BENCH_PID=
python3 - "$OUT/latencies_ms" "$OUT/bench.json" <<'EOF'
import json, statistics, sys
lat = sorted(int(l) for l in open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
print(f"edit -> visible over {len(lat)} edits: p50 {statistics.median(lat):.0f} ms, max {lat[-1]} ms (target <= 200 ms)")
l = b["latency"]
print(f"load during the edits: {b['requests']} checks, {b['requests_per_s']:.0f}/s, errors {b['errors']} {b['errors_by_code']}, "
      f"p50 {l['p50_us']:.0f} us, p99 {l['p99_us']:.0f} us, p99.9 {l['p999_us']:.0f} us")
sys.exit(1 if b["errors"] else 0)
EOF
echo "files in $OUT"
