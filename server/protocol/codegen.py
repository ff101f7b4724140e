"""Regenerates server/protocol/gen/ from protos/ with grpcio-tools: `python -m server.protocol.codegen`."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parents[2] / "protos"
GEN_DIR = Path(__file__).resolve().parent / "gen"
PROTOS = ("model_config.proto", "grpc_service.proto", "health.proto")
# The modules we ship; protoc's empty model_config_pb2_grpc.py is dropped.
OUTPUTS = (
    "model_config_pb2.py",
    "grpc_service_pb2.py",
    "grpc_service_pb2_grpc.py",
    "health_pb2.py",
    "health_pb2_grpc.py",
)
_NOTE = "# Post-processed by server.protocol.codegen: private descriptor pool, package-relative imports.\n"
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_BUILD_MESSAGES = re.compile(r"_builder\.BuildTopDescriptorsAndMessages\(DESCRIPTOR, '\w+', _globals\)")
_IMPORTS_MARK = "# @@protoc_insertion_point(imports)"
_PRIVATE_IMPORTS = "from . import POOL as _POOL\nfrom . import build_messages as _build_messages\n\n"
_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _run_protoc(out_dir: Path) -> None:
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(PROTO_DIR / p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(PROTOS)} in {PROTO_DIR}")


def postprocess(name: str, text: str) -> str:
    """Points a generated module at the private pool and makes sibling imports package-relative."""
    text = _SIBLING_IMPORT.sub(r"from . import \1 as \2", text)
    if name.endswith("_pb2.py"):
        if text.count(_DEFAULT_POOL) != 1:
            raise RuntimeError(f"{name}: expected one default-pool registration; protoc output changed")
        if len(_BUILD_MESSAGES.findall(text)) != 1:
            raise RuntimeError(f"{name}: expected one message-class build; protoc output changed")
        text = text.replace(_DEFAULT_POOL, "_POOL.AddSerializedFile(")
        # Our builder keeps the classes out of the default symbol database; __name__ gives them their
        # real module (server.protocol.gen.x_pb2) so they pickle and print right.
        text = _BUILD_MESSAGES.sub("_build_messages(DESCRIPTOR, __name__, _globals)", text)
        text = text.replace(_IMPORTS_MARK, _PRIVATE_IMPORTS + _IMPORTS_MARK, 1)
    return _NOTE + text


def generate(out_dir: Path) -> list[Path]:
    """Writes the post-processed modules into `out_dir` and returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hangar-protoc-") as tmp:
        _run_protoc(Path(tmp))
        written = []
        for name in OUTPUTS:
            raw = (Path(tmp) / name).read_text(encoding="utf-8")
            target = out_dir / name
            target.write_text(postprocess(name, raw), encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
