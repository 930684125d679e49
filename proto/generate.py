"""Regenerate the Python modules for healthplane.proto.

Run ``python -m healthplane.proto.generate`` after editing the .proto file. The generated
modules are committed so that a plain ``pip install`` needs no code generator;
a test regenerates them into a temporary folder and fails when they differ.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILE = "healthplane/v1/healthplane.proto"
OUTPUTS = ("healthplane_pb2.py", "healthplane_pb2.pyi", "healthplane_pb2_grpc.py")

# protoc writes imports relative to its include root ("from healthplane.v1
# import ..."); the installed package lives under "proto.", so the one import
# the gRPC stubs make is rewritten to the installed path.
_IMPORT_FROM = "from healthplane.v1 import healthplane_pb2"
_IMPORT_TO = "from healthplane.proto.healthplane.v1 import healthplane_pb2"


def generate(out_dir: Path) -> dict[str, str]:
    """Run protoc into out_dir and return {file name: text} of the outputs."""
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_ROOT / PROTO_FILE),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + PROTO_FILE)
    result = {}
    for name in OUTPUTS:
        text = (out_dir / "healthplane" / "v1" / name).read_text()
        result[name] = text.replace(_IMPORT_FROM, _IMPORT_TO)
    return result


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in generate(Path(tmp)).items():
            (PROTO_ROOT / "healthplane" / "v1" / name).write_text(text)
    print("regenerated", ", ".join(OUTPUTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
