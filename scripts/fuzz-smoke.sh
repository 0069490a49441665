#!/usr/bin/env bash
# Fuzz smoke run: every target in fuzz/ for SECONDS each (default 30), coverage-guided by
# libFuzzer, starting from the seed corpora in fuzz/corpus/ (only read; new inputs go to a
# scratch directory). CI runs it with a short time; see fuzz/README.md for long runs.
#
# It needs no cargo-fuzz and no nightly: the targets are built by plain cargo with the same
# coverage instrumentation cargo-fuzz asks of rustc (sanitizer-coverage passes, stable
# flags), without a sanitizer, with debug assertions on (integer overflow panics too).
# A crash leaves the input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-30}"
TARGETS=(policy_parser matcher_eval request_decode uds_authority)

export CARGO_TARGET_DIR="$PWD/target/smoke"
export RUSTFLAGS="--cfg fuzzing -Cdebug-assertions -Coverflow-checks \
  -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does).
HOST="$(rustc -vV | sed -n 's/^host: //p')"
echo "== building fuzz targets (release, coverage-instrumented, $HOST)"
start=$(date +%s)
cargo build --locked --release --bins --target "$HOST"
echo "built in $(($(date +%s) - start)) s"

WORK="$(mktemp -d /tmp/warden-fuzz.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/$t" "artifacts/$t"
  echo "== $t (${SECONDS_EACH}s)"
  if ! "$CARGO_TARGET_DIR/$HOST/release/$t" "$WORK/$t" "corpus/$t" \
      -max_total_time="$SECONDS_EACH" -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
      >"$WORK/$t.log" 2>&1; then
    tail -60 "$WORK/$t.log"
    echo "FAILED: $t (the crashing input is in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^Done [0-9]+ runs" "$WORK/$t.log" | tail -1 || true
done
