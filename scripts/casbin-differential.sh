#!/usr/bin/env bash
# Differential fuzzing of Warden's Casbin engine against pycasbin 1.43.0 (issue 12).
#
#   scripts/casbin-differential.sh [POLICIES] [REQUESTS] [SEED]    (default 200 200 12)
#
# Installs pycasbin into a venv under target/ (once), builds `warden`, then runs
# scripts/casbin_differential.py: random models and policies within the supported
# feature set, random requests, every answer compared; disagreements are minimised and
# printed, those explained by a contested behaviour (policies/README.md) are counted
# apart. Exit status 1 when a disagreement is unexplained. Not part of CI: a long run.
set -euo pipefail
cd "$(dirname "$0")/.."
POLICIES=${1:-200}
REQUESTS=${2:-200}
SEED=${3:-12}
VENV=target/casbin-venv
if ! "$VENV/bin/python" -c 'import casbin, importlib.metadata as m; assert m.version("casbin") == "1.43.0"' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'casbin==1.43.0'
fi
WARDEN=${WARDEN_BIN:-}
if [ -z "$WARDEN" ]; then
  cargo build --locked --quiet --bin warden
  WARDEN=target/debug/warden
fi
exec "$VENV/bin/python" scripts/casbin_differential.py --warden "$WARDEN" \
  --policies "$POLICIES" --requests "$REQUESTS" --seed "$SEED"
