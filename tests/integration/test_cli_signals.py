"""`python -m server serve` as a process: bad flags exit 2; SIGTERM/SIGINT drain in-flight work, exit 0."""

from __future__ import annotations

import queue
import signal
from pathlib import Path
from typing import Any

import pytest
import tritonclient.grpc as grpcclient

from tests.support.python_models import write_marker_model
from tests.support.server import run_cli, server_process, wait_until
from tests.support.tensors import fp32

WAIT_S = 120.0
SLEEPY_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "X", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "Y", data_type: TYPE_FP32, dims: [ -1 ] } ]
parameters { key: "marker_dir" value: { string_value: "%s" } }
instance_group [ { count: 4, kind: KIND_CPU } ]
"""
SLEEPY_CODE = """
import json
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.marker_dir = json.loads(args["model_config"])["parameters"]["marker_dir"]["string_value"]

    def execute(self, requests):
        for r in requests:
            open(os.path.join(self.marker_dir, "started-" + r.request_id()), "w").close()
        time.sleep(1.5)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X")
                                            .as_numpy())]) for r in requests]
"""


@pytest.fixture
def sleepy_repo(tmp_path: Path) -> tuple[Path, Path]:
    return write_marker_model(tmp_path, "sleepy", SLEEPY_CONFIG, SLEEPY_CODE)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_requests_and_exits_0(
    sleepy_repo: tuple[Path, Path], sig: signal.Signals
) -> None:
    repo, markers = sleepy_repo
    with server_process(["--model-repository", str(repo), "--exit-timeout-secs", "60"]) as proc:
        client = grpcclient.InferenceServerClient(proc.url)
        results: queue.Queue[Any] = queue.Queue()
        for i in range(3):
            client.async_infer(
                "sleepy", [fp32("X", [float(i)])], request_id=f"u{i}",
                callback=lambda result, error: results.put(error or result),
            )  # fmt: skip
        stream_items: queue.Queue[Any] = queue.Queue()
        client.start_stream(callback=lambda result, error: stream_items.put(error or result))
        client.async_stream_infer("sleepy", [fp32("X", [9.0])], request_id="s0")
        wait_until(lambda: len(list(markers.iterdir())) == 4, WAIT_S, what="all four requests to start")
        proc.send_signal(sig)
        replies = [results.get(timeout=WAIT_S) for _ in range(3)]
        assert all(not isinstance(r, Exception) for r in replies), replies
        assert sorted(float(r.as_numpy("Y")[0]) for r in replies) == [0.0, 1.0, 2.0]
        streamed = stream_items.get(timeout=WAIT_S)
        assert not isinstance(streamed, Exception), streamed
        assert streamed.as_numpy("Y").tolist() == [9.0]
        assert proc.wait(WAIT_S) == 0, proc.output
        client.stop_stream()
    assert f"{sig.name} received" in proc.output
    assert "Started GRPCInferenceService at 127.0.0.1:" in proc.output


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--strict-readiness", "perhaps"], ["--strict-readiness", "perhaps"]),
        (["--grpc-port", "eighty"], ["--grpc-port", "eighty"]),
        (["--load-model", "m"], ["--load-model", "explicit"]),
        (["--model-control-mode", "sometimes"], ["--model-control-mode", "sometimes"]),
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, args: list[str], names: list[str]) -> None:
    done = run_cli(["serve", "--model-repository", str(tmp_path), *args])
    assert done.returncode == 2, done.stderr
    for name in names:
        assert name in done.stderr


def test_missing_repository_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = run_cli(
        ["serve", "--model-repository", str(missing), "--grpc-port", "0", "--allow-metrics", "false"]
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert str(missing) in done.stdout + done.stderr


def test_help_lists_commands() -> None:
    done = run_cli(["--help"])
    assert done.returncode == 0
    assert "serve" in done.stdout and "build" in done.stdout
