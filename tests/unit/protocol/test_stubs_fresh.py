"""The committed stubs in server/protocol/gen/ match what codegen makes from protos/ today."""

from __future__ import annotations

import re
from pathlib import Path

from server.protocol import codegen

# Tool-version stamps differ between grpcio-tools patch releases without any change to the protos.
_STAMPS = re.compile(
    r"^# Protobuf Python Version: [^\n]*$|^GRPC_GENERATED_VERSION = [^\n]*$"
    r"|^_runtime_version\.ValidateProtobufRuntimeVersion\(.*?^\)$",
    re.MULTILINE | re.DOTALL,
)


def _normalized(path: Path) -> str:
    return _STAMPS.sub("<stamp>", path.read_text(encoding="utf-8"))


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    written = codegen.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(codegen.OUTPUTS)
    stale = [
        p.name
        for p in written
        if not (codegen.GEN_DIR / p.name).exists()
        or _normalized(codegen.GEN_DIR / p.name) != _normalized(p)
    ]
    assert not stale, (
        f"server/protocol/gen/ is stale for {stale}: run `python -m server.protocol.codegen` "
        "after editing protos/ (and commit the result)"
    )


def test_stamps_are_the_only_thing_normalized() -> None:
    for name in ("health_pb2.py", "health_pb2_grpc.py"):
        text = (codegen.GEN_DIR / name).read_text(encoding="utf-8")
        kept = _STAMPS.sub("", text)
        assert len(text) - len(kept) < 200, f"{name}: normalization removed more than the version stamps"


def test_postprocess_refuses_unexpected_protoc_output() -> None:
    import pytest

    with pytest.raises(RuntimeError, match="default-pool"):
        codegen.postprocess("x_pb2.py", "DESCRIPTOR = something_else()\n")


def test_sibling_imports_become_package_relative() -> None:
    out = codegen.postprocess("x_pb2_grpc.py", "import grpc\nimport grpc_service_pb2 as grpc__service__pb2\n")
    assert "from . import grpc_service_pb2 as grpc__service__pb2" in out
    assert "\nimport grpc\n" in out


def test_cli_writes_every_module_into_out(tmp_path: Path) -> None:
    assert codegen.main(["--out", str(tmp_path / "gen")]) == 0
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == sorted(codegen.OUTPUTS)
