#!/usr/bin/env bash
# Generate Python stubs for warden.v1 from proto/ into examples/python/gen (or $1).
# Needs grpcio-tools (pip install -r examples/python/requirements.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/gen}"
mkdir -p "$out"
python -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$out" --grpc_python_out="$out" \
  "$root"/proto/warden/v1/*.proto
echo "stubs in $out (add it to PYTHONPATH)"
