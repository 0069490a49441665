#!/usr/bin/env bash
# Regenerate src/api/ext_authz/envoy_descriptor.bin, the descriptors reflection serves for
# envoy.service.auth.v3.Authorization: envoy/service/auth/v3/external_auth.proto and every
# file it imports, taken from the envoy-types crate of Cargo.lock (its src/generated/types.bin),
# without source info. Needs python3 with protobuf (pip install protobuf). Run it after
# updating envoy-types; `cargo test --lib envoy_descriptor` checks the result.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(awk '/^name = "envoy-types"$/ {getline; gsub(/"/, "", $3); print $3}' "$root/Cargo.lock")"
src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/envoy-types-"$version" | head -1)"
python3 - "$src/src/generated/types.bin" "$root/src/api/ext_authz/envoy_descriptor.bin" <<'PY'
import sys
from google.protobuf import descriptor_pb2

src, out = sys.argv[1], sys.argv[2]
every = descriptor_pb2.FileDescriptorSet()
every.ParseFromString(open(src, "rb").read())
by_name = {f.name: f for f in every.file}
order, seen = [], set()

def visit(name):
    if name not in seen:
        seen.add(name)
        for dep in by_name[name].dependency:
            visit(dep)
        order.append(name)

visit("envoy/service/auth/v3/external_auth.proto")
wanted = descriptor_pb2.FileDescriptorSet()
wanted.file.extend(by_name[n] for n in order)
for f in wanted.file:
    f.ClearField("source_code_info")
open(out, "wb").write(wanted.SerializeToString())
print(f"{out}: {len(order)} files")
PY
