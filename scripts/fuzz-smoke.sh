#!/usr/bin/env bash
# Short fuzz smoke run: every target in fuzz/ for SECONDS each (default 30). Needs
# `cargo install cargo-fuzz`; works on stable through RUSTC_BOOTSTRAP=1. See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-30}"
export RUSTC_BOOTSTRAP=1
# New inputs go to a scratch corpus; the seeds in corpus/ are only read.
WORK="$(mktemp -d /tmp/warden-fuzz.XXXXXX)"
for t in policy_parser matcher_eval request_decode; do
  mkdir -p "$WORK/$t"
  echo "== $t (${SECONDS_EACH}s)"
  if ! cargo fuzz run "$t" "$WORK/$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" >"$WORK/$t.log" 2>&1; then
    tail -40 "$WORK/$t.log"
    echo "FAILED: $t (artifacts in fuzz/artifacts/$t)" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs|^#[0-9]+.*DONE" "$WORK/$t.log" | tail -1 || true
done
rm -rf "$WORK"
