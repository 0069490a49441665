#!/usr/bin/env bash
# Cluster write figures (benches/README.md, "Cluster writes"): single node vs 3 sidecars on a
# 3-node NATS cluster (scripts/nats-cluster.sh), `warden bench --writes` at 1 / 8 / 32 writers,
# the write pause when the stream leader is killed, check latency on a sidecar while the others
# replicate writes vs idle, and the catch-up of a stopped sidecar with and without batching.
# Loopback and Unix sockets only; everything lives in $WORK and is stopped at the end.
#
#   cargo build --release --locked && scripts/bench-cluster-writes.sh
#
# Environment: DURATION (s per run, default 5), CATCHUP (entries written while a sidecar is
# stopped, default 20000), ORGS / MEMBERS (gen-directory shape, default 1000 × 20),
# WORK (default: a temporary directory), NATS_CLUSTER_BASE_PORT (default 24222), WARDEN_BIN
# (default target/release/warden), PHASES (default "single cluster checks leader catchup"; the
# cluster is started whenever a phase after "single" runs; "ab" is not in the default), CATCHUP_MODES
# (default "default 1": batched, then one fsync per entry), SERVE_ARGS (more `warden serve` flags
# for every daemon), ROUNDS (phase "ab", default 2), PIN (1: sidecar c and the check load on
# cpu 0, NATS, a, b, the single node and the writers on cpu 1, so that "checks on c while the
# others replicate" measures what replication costs c's check path, its own apply loop, rather
# than the other processes' share of two cores; default 0, no pinning).
# Bootstrap at 1M memberships (not in the default PHASES): an empty sidecar loads a snapshot of
# BOOT_ORGS × BOOT_MEMBERS (default 10000 × 100) made by `cluster init`, on a fresh NATS cluster
# (the other sidecars stopped; it runs last):
#   PHASES=bootstrap scripts/bench-cluster-writes.sh
# Group commit A/B in one run, arms alternating (group = the default, entry =
# WARDEN_CLUSTER_CATCHUP_BATCH=1 on every sidecar: one fsync per applied entry), each round
# restarting the three sidecars in that arm, then writes at 1/8/32 writers with --watch and checks
# on c idle vs while a and b take 8 writers:
#   PHASES=ab DURATION=3 ROUNDS=2 scripts/bench-cluster-writes.sh
# The issue's 100k catch-up alone, without snapshots (else the stopped sidecar re-bootstraps
# from a snapshot and replays only what follows it), with enough orgs that every add is fresh:
#   PHASES=catchup CATCHUP=100000 CATCHUP_MODES=default ORGS=5000 \
#     SERVE_ARGS="--cluster-snapshot-every 0" scripts/bench-cluster-writes.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
W="${WARDEN_BIN:-$root/target/release/warden}"
[ -x "$W" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
DURATION="${DURATION:-5}"
CATCHUP="${CATCHUP:-20000}"
PHASES=" ${PHASES:-single cluster checks leader catchup} "
CATCHUP_MODES="${CATCHUP_MODES:-default 1}"
phase() { [[ "$PHASES" == *" $1 "* ]]; }
ORGS="${ORGS:-1000}"
MEMBERS="${MEMBERS:-20}"
WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
export NATS_CLUSTER_DIR="$WORK/nats"
export NATS_CLUSTER_BASE_PORT="${NATS_CLUSTER_BASE_PORT:-24222}"
shape=(--orgs "$ORGS" --members "$MEMBERS" --teams 2 --apps 2)
# on CPU CMD…: run CMD on that cpu when PIN=1.
on() { if [ "${PIN:-0}" = 1 ]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
cpu_of() { if [ "$1" = c ]; then echo 0; else echo 1; fi; }
nats() { on 1 bash "$root/scripts/nats-cluster.sh" "$@"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nats stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$W" gen-directory "${shape[@]}" --out "$WORK/dir.json" >/dev/null

# start NAME [serve args…]: import the directory into $WORK/NAME (first time; for the cluster,
# only `a` is imported and made the stream's first snapshot, b and c start empty and bootstrap
# from it) and serve it.
declare -A pid_of
start() {
  local name="$1"; shift
  if [ ! -e "$WORK/$name/warden.redb" ] && { [ "$name" = single ] || [ "$name" = a ]; }; then
    "$W" import --data "$WORK/$name" "$WORK/dir.json" >/dev/null
    if [ "$name" = a ]; then "$W" cluster init --data "$WORK/a" --cluster "$urls" >/dev/null; fi
  fi
  local pin=()
  if [ "${PIN:-0}" = 1 ]; then pin=(taskset -c "$(cpu_of "$name")"); fi
  # Not through `on`: a function sent to the background is a subshell, and $! must be the
  # daemon's pid for `stop` (taskset execs it).
  WARDEN_LOG=info "${pin[@]}" "$W" serve --data "$WORK/$name" --policies "$root/policies" \
    --listen "unix:$WORK/$name.sock" "$@" ${SERVE_ARGS:-} >>"$WORK/$name.log" 2>&1 &
  pid_of[$name]=$!
  pids+=($!)
  for _ in $(seq 200); do [ -S "$WORK/$name.sock" ] && break; sleep 0.1; done
}
stop() { kill "${pid_of[$1]}"; wait "${pid_of[$1]}" 2>/dev/null || true; rm -f "$WORK/$1.sock"; }
writes() { on 1 "$W" bench --writes "${shape[@]}" --duration "$DURATION" --threads 2 "$@"; }
checks() { on 0 "$W" bench --connect "unix:$WORK/c.sock" "${shape[@]}" --duration "$DURATION" -c 8 --threads 1; }
# Checks on c idle, then while a and b take 8 writers (whose figures follow).
checks_idle_then_busy() {
  checks
  writes --target "unix:$WORK/a.sock" --target "unix:$WORK/b.sock" -c 8 --seed "$seed" >"$WORK/bg-writes.txt" &
  local bg=$!
  sleep 0.5
  checks
  wait "$bg"; cat "$WORK/bg-writes.txt"; next_seed
}
seed=1
next_seed() { seed=$((seed + 1)); }

if phase single; then
echo "## single node"
start single
for c in 1 8 32; do writes --connect "unix:$WORK/single.sock" -c "$c" --seed "$seed"; next_seed; done
stop single
fi
[ "$PHASES" = " single " ] && exit 0

echo "## cluster: 3 sidecars, 3 NATS nodes"
nats start >/dev/null
urls="$(nats urls)"
for s in a b c; do start "$s" --cluster "$urls"; done
sleep 3
targets=(--target "unix:$WORK/a.sock" --target "unix:$WORK/b.sock" --target "unix:$WORK/c.sock")
if phase cluster; then
for c in 1 8 32; do writes "${targets[@]}" --watch -c "$c" --seed "$seed"; next_seed; done
fi

if phase checks; then
echo "## check latency on sidecar c: idle, then while a and b take writes (8 writers)"
checks_idle_then_busy
fi

if phase leader; then
echo "## stream leader killed 3 s into a $((DURATION + 10)) s run (8 writers): longest gap"
leader="$(curl -s "http://127.0.0.1:$((NATS_CLUSTER_BASE_PORT + 20))/jsz?accounts=true&streams=true" \
  | jq -r '[.account_details[]?.stream_detail[]? | select(.name=="warden") | .cluster.leader][0]')"
echo "leader: $leader"
( sleep 3; nats kill "${leader#n}" >/dev/null ) &
on 1 "$W" bench --writes "${shape[@]}" --duration "$((DURATION + 10))" --threads 2 "${targets[@]}" -c 8 --seed "$seed"
next_seed
nats start "${leader#n}" >/dev/null
sleep 10
fi

if phase ab; then
echo "## group commit A/B, ${ROUNDS:-2} rounds, arms alternating (group: default; entry: WARDEN_CLUSTER_CATCHUP_BATCH=1)"
for round in $(seq "${ROUNDS:-2}"); do
  for arm in group entry; do
    for s in a b c; do stop "$s"; done
    for s in a b c; do
      if [ "$arm" = entry ]; then
        WARDEN_CLUSTER_CATCHUP_BATCH=1 start "$s" --cluster "$urls"
      else
        start "$s" --cluster "$urls"
      fi
    done
    sleep 3
    for c in 1 8 32; do
      echo "### round $round, arm $arm, $c writers"
      writes "${targets[@]}" --watch -c "$c" --seed "$seed"; next_seed
    done
    echo "### round $round, arm $arm, checks on c: idle, then while a and b take 8 writers"
    checks_idle_then_busy
  done
done
fi

if phase catchup; then
echo "## catch-up of $CATCHUP entries, modes: $CATCHUP_MODES (default = batched, 1 = WARDEN_CLUSTER_CATCHUP_BATCH=1)"
for batch in $CATCHUP_MODES; do
  stop c
  on 1 "$W" bench --writes "${shape[@]}" --requests "$CATCHUP" --threads 2 \
    --target "unix:$WORK/a.sock" --target "unix:$WORK/b.sock" -c 32 --seed "$seed" | tail -n +4
  next_seed
  before="$(grep -c 'caught up on the directory log' "$WORK/c.log" || true)"
  if [ "$batch" = default ]; then
    start c --cluster "$urls"
  else
    WARDEN_CLUSTER_CATCHUP_BATCH=1 start c --cluster "$urls"
  fi
  for _ in $(seq 1200); do
    [ "$(grep -c 'caught up on the directory log' "$WORK/c.log" || true)" -gt "$before" ] && break
    sleep 0.5
  done
  echo "batch=$batch: $(grep 'caught up on the directory log' "$WORK/c.log" | tail -1 | sed 's/.*caught up/caught up/')"
done
fi

if phase bootstrap; then
BOOT_ORGS="${BOOT_ORGS:-10000}"; BOOT_MEMBERS="${BOOT_MEMBERS:-100}"
echo "## an empty sidecar bootstraps from a snapshot of $BOOT_ORGS orgs × $BOOT_MEMBERS members (a fresh NATS cluster)"
for s in a b c; do stop "$s"; done
nats stop >/dev/null
nats start >/dev/null
urls="$(nats urls)"
"$W" gen-directory --orgs "$BOOT_ORGS" --members "$BOOT_MEMBERS" --teams 2 --apps 2 --out "$WORK/boot.json" >/dev/null
ls -l "$WORK/boot.json" | awk '{print "directory JSON: " $5 " bytes"}'
t0=$(date +%s%N)
"$W" import --data "$WORK/boot-src" "$WORK/boot.json" >/dev/null
t1=$(date +%s%N)
"$W" cluster init --data "$WORK/boot-src" --cluster "$urls"
t2=$(date +%s%N)
echo "import: $(( (t1 - t0) / 1000000 )) ms; cluster init (snapshot + upload): $(( (t2 - t1) / 1000000 )) ms"
rm -f "$WORK/boot.json"
start boot --cluster "$urls"
for _ in $(seq 1200); do grep -q 'bootstrapped from a directory snapshot' "$WORK/boot.log" && break; sleep 0.5; done
grep 'bootstrapped from a directory snapshot' "$WORK/boot.log" | sed 's/.*INFO //' || echo "no bootstrap within 10 minutes"
grep -o 'VmHWM:.*' "/proc/${pid_of[boot]}/status" | sed 's/^/bootstrapped sidecar peak RSS /' || true
stop boot
rm -rf "$WORK/boot" "$WORK/boot-src"
fi
