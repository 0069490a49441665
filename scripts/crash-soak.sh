#!/usr/bin/env bash
# Crash-durability soak: the CI test tests/crash_durability.rs with many more rounds.
#
# Concurrent clients (Unix socket and TCP) stream mixed directory writes into a real
# `warden serve`, which is SIGKILLed at a random moment of each round and restarted;
# after each kill the store is checked offline (gap-free log, every acknowledged write
# at its revision, tables == replay of the log, index == rebuild) and mid-stream the
# live index is compared with the tables (AdminService.CheckIndex).
#
# Usage: scripts/crash-soak.sh [ROUNDS] [WRITES_PER_ROUND]    (defaults: 25 and 500,
# i.e. ≥ 10,000 acknowledged writes; a round kills after 0.5–1.5 × WRITES_PER_ROUND).
# Prints one summary line with the figures. Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-25}"
PER_ROUND="${2:-500}"
WARDEN_CRASH_ROUNDS="$ROUNDS" WARDEN_CRASH_WRITES_PER_ROUND="$PER_ROUND" \
  cargo test --locked --test integration crash_durability:: -- --nocapture 2>&1 |
  grep -E "SIGKILL rounds|panicked|test result|error"
