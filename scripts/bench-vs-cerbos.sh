#!/usr/bin/env bash
# Warden and the Cerbos PDP side by side, in one run, on loopback only (issue 7).
#
# Generates a directory (ORGS x MEMBERS, TEAMS teams and APPS apps per org), imports it, starts
# `warden serve` (release build) with a Unix socket and a loopback TCP port, and for every row
# (transport in {tcp, uds}) x (concurrency in {1, 8, 32}) x (payload in {single check, batch of
# 10 resources x 3 actions, batch of 100 independent checks}) runs `warden bench` and then Cerbos's
# `grpcbench` with the same knobs (the peer has no 100-item payload: that row is Warden's alone):
# closed loop, one HTTP/2 connection, one client thread, DURATION s after WARMUP s. Servers are
# pinned to SERVER_CPUS and load generators to LOADGEN_CPUS, as in ../shared/peers/cerbos/RESULTS.md.
# Prints one table with the ratio Warden / Cerbos per row.
#
# The Cerbos side comes from ../shared/peers/cerbos (pdpctl.sh, policies, payloads, grpcbench):
# the PDP from npm, grpcbench built with cargo (needs protoc). If any of that cannot be had, the
# script says why and still prints Warden's side.
#
# Knobs (env): DURATION=10 WARMUP=2 CONC="1 8 32" TRANSPORTS="tcp uds" PAYLOADS="single batch10x3 batch100"
#   ORGS=10000 MEMBERS=100 TEAMS=10 APPS=20   CERBOS=1 (0 = Warden only)   INSTALL=1 (0 = no installs)
#   SERVER_CPUS=0 LOADGEN_CPUS=1 ('' = unpinned)   WORK=/tmp/cerbos (Cerbos install, shared with run.sh)
#   OUT=<new temp dir> (dump, store, JSON per cell, summary.md)   WARDEN_BIN=<skip the release build>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER=${PEER:-$ROOT/../shared/peers/cerbos}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
CONC=${CONC:-"1 8 32"}; TRANSPORTS=${TRANSPORTS:-"tcp uds"}; PAYLOADS=${PAYLOADS:-"single batch10x3 batch100"}
ORGS=${ORGS:-10000}; MEMBERS=${MEMBERS:-100}; TEAMS=${TEAMS:-10}; APPS=${APPS:-20}
CERBOS=${CERBOS:-1}; INSTALL=${INSTALL:-1}
SERVER_CPUS=${SERVER_CPUS-0}; LOADGEN_CPUS=${LOADGEN_CPUS-1}
export WORK=${WORK:-/tmp/cerbos}
OUT=${OUT:-$(mktemp -d /tmp/warden-vs-cerbos.XXXXXX)}
mkdir -p "$OUT"
# grpcbench refuses longer runs; keep both sides on the same bound.
if [ "$DURATION" -gt 120 ] || [ "$WARMUP" -gt 30 ]; then echo "DURATION ≤ 120 and WARMUP ≤ 30, please" >&2; exit 2; fi
CELL_TIMEOUT=$((DURATION + WARMUP + 60))

# Command prefixes that pin to a CPU list (empty: unpinned). Arrays, not functions, so that `&`
# and `timeout` run the program itself and $! is its pid.
SERVER_PIN=(); [ -z "$SERVER_CPUS" ] || SERVER_PIN=(taskset -c "$SERVER_CPUS")
LOADGEN_PIN=(); [ -z "$LOADGEN_CPUS" ] || LOADGEN_PIN=(taskset -c "$LOADGEN_CPUS")

echo "== warden (release build) $(date -u +%T)"
if [ -z "${WARDEN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  WARDEN_BIN=$TARGET/release/warden
fi
SHAPE=(--orgs "$ORGS" --members "$MEMBERS" --teams "$TEAMS" --apps "$APPS")

echo "== $(date -u +%T) directory: $ORGS orgs x $MEMBERS members, $TEAMS teams, $APPS apps per org"
"$WARDEN_BIN" gen-directory "${SHAPE[@]}" --out "$OUT/directory.json"
rm -rf "$OUT/data" && mkdir -p "$OUT/data"
"$WARDEN_BIN" import "$OUT/directory.json" --data "$OUT/data"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOCK=$OUT/warden.sock
WARDEN_PID=
cleanup() {
  if [ -n "$WARDEN_PID" ] && kill -0 "$WARDEN_PID" 2>/dev/null; then kill -TERM "$WARDEN_PID"; wait "$WARDEN_PID" 2>/dev/null || true; fi
  if [ "${CERBOS_OK:-0}" = 1 ]; then "$PEER/pdpctl.sh" stop vs-warden >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
WARDEN_LOG=warn "${SERVER_PIN[@]}" "$WARDEN_BIN" serve --data "$OUT/data" --policies "$ROOT/policies" \
  --listen "unix:$SOCK" --listen "tcp:127.0.0.1:$PORT" > "$OUT/warden.log" 2>&1 &
WARDEN_PID=$!
for _ in $(seq 1 600); do # the index load at 1M memberships takes a few seconds
  "$WARDEN_BIN" admin stats --connect "unix:$SOCK" > /dev/null 2>&1 && break
  kill -0 "$WARDEN_PID" 2>/dev/null || { echo "warden serve exited; see $OUT/warden.log" >&2; exit 1; }
  sleep 0.1
done
echo "warden pid $WARDEN_PID on unix:$SOCK and tcp:127.0.0.1:$PORT, RSS $(awk '/VmRSS/{printf "%.0f MiB", $2/1024}' "/proc/$WARDEN_PID/status")"

# --- Cerbos: everything it needs, or a clear reason why not.
CERBOS_OK=0; CERBOS_WHY="CERBOS=0"
CERBOS_EXE=$WORK/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64
GRPCBENCH=$WORK/target-grpcbench/release/cerbos-grpc-bench
cerbos_prepare() {
  [ -d "$PEER" ] || { CERBOS_WHY="$PEER not found"; return 1; }
  if [ "$INSTALL" = 1 ]; then
    mkdir -p "$WORK" && (cd "$WORK" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install --no-audit --no-fund "@cerbos/cerbos-linux-x64@${CERBOS_VERSION:-0.55.0}" >/dev/null 2>&1) ||
      { CERBOS_WHY="npm install @cerbos/cerbos-linux-x64 failed"; return 1; }
    command -v protoc >/dev/null || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler >/dev/null 2>&1; } ||
      { CERBOS_WHY="protoc (Debian protobuf-compiler) is needed to build grpcbench and could not be installed"; return 1; }
    if [ ! -x "$GRPCBENCH" ] || [ "$PEER/grpcbench/src/main.rs" -nt "$GRPCBENCH" ]; then
      mkdir -p "$WORK/grpcbench" && cp -r "$PEER/grpcbench/." "$WORK/grpcbench/" && chmod -R u+w "$WORK/grpcbench"
      (cd "$WORK/grpcbench" && CARGO_TARGET_DIR=$WORK/target-grpcbench cargo build --release -j 2 --quiet) ||
        { CERBOS_WHY="building grpcbench failed"; return 1; }
    fi
  fi
  [ -x "$CERBOS_EXE" ] || { CERBOS_WHY="no Cerbos binary at $CERBOS_EXE (INSTALL=0?)"; return 1; }
  [ -x "$GRPCBENCH" ] || { CERBOS_WHY="no grpcbench at $GRPCBENCH (INSTALL=0?)"; return 1; }
  command -v curl >/dev/null || { CERBOS_WHY="pdpctl.sh needs curl"; return 1; }
  rm -rf "$WORK/policies" && cp -r "$PEER/policies" "$WORK/policies" && chmod -R u+w "$WORK/policies"
  "$CERBOS_EXE" compile --no-color "$WORK/policies" > "$OUT/cerbos-compile.log" 2>&1 ||
    { CERBOS_WHY="cerbos compile failed, see $OUT/cerbos-compile.log"; return 1; }
}
if [ "$CERBOS" = 1 ]; then
  echo "== $(date -u +%T) cerbos (npm @cerbos/cerbos-linux-x64, grpcbench)"
  if cerbos_prepare; then CERBOS_OK=1; "$CERBOS_EXE" --version | head -1; fi
fi
[ "$CERBOS_OK" = 1 ] || echo "!! Cerbos side skipped: $CERBOS_WHY. Printing Warden's side only." >&2

: > "$OUT/cells.jsonl"
for transport in $TRANSPORTS; do
  case $transport in
    tcp) w_target=tcp:127.0.0.1:$PORT; c_http=127.0.0.1:3592; c_grpc=127.0.0.1:3593; c_addr=http://$c_grpc ;;
    uds) w_target=unix:$SOCK; c_http=unix:$WORK/run/cerbos.http; c_grpc=unix:$WORK/run/cerbos.grpc; c_addr=$c_grpc ;;
    *) echo "unknown transport $transport" >&2; exit 2 ;;
  esac
  if [ "$CERBOS_OK" = 1 ]; then
    PDP_CPUS=$SERVER_CPUS LOG_LEVEL=warn HTTP_ADDR=$c_http GRPC_ADDR=$c_grpc PDP_LOG=/dev/null \
      "$PEER/pdpctl.sh" start vs-warden
    cerbos_pid=$(cat "$WORK/run/vs-warden.pid")
  fi
  for c in $CONC; do
    for payload in $PAYLOADS; do
      case $payload in single) batch=1 ;; batch10x3) batch=10x3 ;; batch100) batch=100 ;; *) echo "unknown payload $payload" >&2; exit 2 ;; esac
      cell=$transport-$payload-c$c
      # Alternate per row: Warden, then Cerbos, on the same knobs.
      timeout "$CELL_TIMEOUT" "${LOADGEN_PIN[@]}" "$WARDEN_BIN" bench --connect "$w_target" "${SHAPE[@]}" \
        --concurrency "$c" --connections 1 --threads 1 --duration "$DURATION" --warmup "$WARMUP" \
        --batch "$batch" --pid "$WARDEN_PID" --json > "$OUT/warden-$cell.json"
      cerbos_json=null
      if [ "$CERBOS_OK" = 1 ] && [ -f "$PEER/payloads/$payload.json" ]; then
        timeout "$CELL_TIMEOUT" "${LOADGEN_PIN[@]}" "$GRPCBENCH" --addr "$c_addr" --payload "$PEER/payloads/$payload.json" \
          --concurrency "$c" --connections 1 --threads 1 --duration "$DURATION" --warmup "$WARMUP" \
          --max-requests 5000000 > "$OUT/cerbos-$cell.json"
        cerbos_json=$(cat "$OUT/cerbos-$cell.json")
        cerbos_rss=$(awk '/VmRSS/{print $2*1024}' "/proc/$cerbos_pid/status")
      fi
      python3 - "$transport" "$payload" "$c" "$OUT/warden-$cell.json" "$cerbos_json" "${cerbos_rss:-0}" >> "$OUT/cells.jsonl" <<'EOF'
import json, sys
t, p, c, wfile, cjson, crss = sys.argv[1:]
w = json.load(open(wfile))
cb = json.loads(cjson)
print(json.dumps({"transport": t, "payload": p, "concurrency": int(c), "warden": w, "cerbos": cb, "cerbos_rss_bytes": int(crss)}))
EOF
      tail -n 1 "$OUT/cells.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); w = r["warden"]; cb = r["cerbos"]
t, p, c = r["transport"], r["payload"], r["concurrency"]
line = "%-4s %-10s c=%-3d warden %10.0f decisions/s p50 %8.1f us errors %d" % (t, p, c, w["decisions_per_s"], w["latency"]["p50_us"], w["errors"])
if cb: line += " | cerbos %8.0f checks/s p50 %8.1f us errors %d" % (cb["checks_per_s"], cb["p50_ms"] * 1000, cb["errors"])
print(line)'
    done
  done
  if [ "$CERBOS_OK" = 1 ]; then "$PEER/pdpctl.sh" stop vs-warden > /dev/null; fi
done

python3 - "$OUT/cells.jsonl" "$WARDEN_PID" > "$OUT/summary.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| transport | payload | c | Warden req/s | Warden decisions/s | Warden p50 µs | p99 µs | p99.9 µs | Cerbos req/s | Cerbos checks/s | Cerbos p50 µs | p99 µs | decisions/s ratio | p50 ratio (Cerbos/Warden) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    w, cb, wl = r["warden"], r["cerbos"], r["warden"]["latency"]
    cells = [r["transport"], r["payload"], str(r["concurrency"]), f"{w['requests_per_s']:.0f}", f"{w['decisions_per_s']:.0f}",
             f"{wl['p50_us']:.1f}", f"{wl['p99_us']:.1f}", f"{wl['p999_us']:.1f}"]
    if cb:
        cells += [f"{cb['rps']:.0f}", f"{cb['checks_per_s']:.0f}", f"{cb['p50_ms']*1000:.0f}", f"{cb['p99_ms']*1000:.0f}",
                  f"**{w['decisions_per_s'] / max(cb['checks_per_s'], 1e-9):.1f}×**", f"{cb['p50_ms']*1000 / max(wl['p50_us'], 1e-9):.1f}×"]
    else:
        cells += ["–"] * 6
    print("| " + " | ".join(cells) + " |")
errors = sum(r["warden"]["errors"] + (r["cerbos"]["errors"] if r["cerbos"] else 0) for r in rows)
print()
print(f"errors (both sides, all cells): {errors}")
last = rows[-1]["warden"].get("server_after") if rows else None
if last:
    print(f"warden RSS after the last cell: {last['rss_bytes'] / 2**20:.0f} MiB (peak {last['peak_rss_bytes'] / 2**20:.0f} MiB)")
crss = [r["cerbos_rss_bytes"] for r in rows if r["cerbos"]]
if crss:
    print(f"cerbos RSS at the end of a cell: up to {max(crss) / 2**20:.0f} MiB")
EOF
echo
echo "== $(date -u +%Y-%m-%d) DURATION=${DURATION}s WARMUP=${WARMUP}s servers on cpus '${SERVER_CPUS}', load generators on cpus '${LOADGEN_CPUS}', $(nproc) cores"
cat "$OUT/summary.md"
echo "(per-cell JSON and summary.md in $OUT)"
