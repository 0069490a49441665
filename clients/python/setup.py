"""Build hook: generate the warden.v1 stubs from the repository's proto/ with grpcio-tools.

The generated modules go into the built package as ``warden_authz._proto.warden.v1`` (never
into the source tree, never committed). Their imports are rewritten from ``warden.v1`` to that
package path so the installed package owns no top-level ``warden`` module that could clash
with another install.

The protos are read from ``$WARDEN_PROTO_DIR``, else ``../../proto`` (this directory inside
the Warden repository, where ``pip install ./clients/python`` builds).
"""

import os
import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = "warden_authz._proto"


def proto_root() -> Path:
    root = Path(os.environ.get("WARDEN_PROTO_DIR") or HERE.parent.parent / "proto")
    if not (root / "warden" / "v1").is_dir():
        raise SystemExit(
            f"warden-authz: no protos at {root}/warden/v1: build from the Warden repository "
            "(pip install ./clients/python) or set WARDEN_PROTO_DIR to its proto/ directory"
        )
    return root


def generate(out: Path) -> None:
    from grpc_tools import protoc  # a build requirement (pyproject.toml)
    import grpc_tools

    root = proto_root()
    protos = sorted(str(p) for p in (root / "warden" / "v1").glob("*.proto"))
    # A build directory from an earlier build may hold stubs of a proto since removed.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"warden-authz: protoc failed on {root}")
    for d in (out, out / "warden", out / "warden" / "v1"):
        (d / "__init__.py").touch()
    for f in (out / "warden" / "v1").iterdir():
        if f.suffix in (".py", ".pyi"):
            text = f.read_text()
            text = re.sub(r"^from warden\.v1 import", f"from {PACKAGE}.warden.v1 import", text, flags=re.M)
            f.write_text(text)


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate(Path(self.build_lib) / "warden_authz" / "_proto")


setup(cmdclass={"build_py": BuildPyWithStubs})
