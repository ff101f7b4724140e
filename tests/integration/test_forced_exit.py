"""`hangar serve` shutdown bounds: a second SIGTERM/SIGINT exits at once (code 1), and unloads that outlast
--exit-timeout-secs are abandoned rather than waited for; a bad --log-file is a clear error."""

from __future__ import annotations

import queue
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.support.python_models import write_marker_model
from tests.support.server import run_cli, server_process, wait_until
from tests.support.tensors import fp32

WAIT_S = 120.0
PROMPT_S = 20.0
"""A forced exit must come well before the 60 s drain (and the 30 s thread joins) it skips."""
STUCK_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "X", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "Y", data_type: TYPE_FP32, dims: [ -1 ] } ]
parameters { key: "marker_dir" value: { string_value: "%s" } }
"""
STUCK_CODE = """
import json
import os
import time


class TritonPythonModel:
    def initialize(self, args):
        self.marker_dir = json.loads(args["model_config"])["parameters"]["marker_dir"]["string_value"]

    def execute(self, requests):
        for r in requests:
            open(os.path.join(self.marker_dir, "started-" + r.request_id()), "w").close()
        # Blocks, ignoring cancellation, until the test releases it (or 5 minutes pass).
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(self.marker_dir, "release")) and time.monotonic() < deadline:
            time.sleep(0.02)
        raise RuntimeError("released")
"""


@pytest.fixture
def stuck_repo(tmp_path: Path) -> tuple[Path, Path]:
    return write_marker_model(tmp_path, "stuck", STUCK_CONFIG, STUCK_CODE)


def _start_stuck_request(url: str, markers: Path) -> queue.Queue[Any]:
    client = grpcclient.InferenceServerClient(url)
    results: queue.Queue[Any] = queue.Queue()
    client.async_infer(
        "stuck", [fp32("X", [1.0])], request_id="r0",
        callback=lambda result, error: results.put(error or result),
    )  # fmt: skip
    wait_until(lambda: (markers / "started-r0").exists(), WAIT_S, what="the request to start executing")
    return results


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_cancels_in_flight_requests_and_exits_1(
    stuck_repo: tuple[Path, Path], sig: signal.Signals
) -> None:
    repo, markers = stuck_repo
    with server_process(["--model-repository", str(repo), "--exit-timeout-secs", "60"]) as proc:
        results = _start_stuck_request(proc.url, markers)
        proc.send_signal(sig)
        wait_until(lambda: f"{sig.name} received: stopping" in proc.output, WAIT_S, what="the first signal")
        t0 = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(WAIT_S) == 1, proc.output
        assert time.monotonic() - t0 < PROMPT_S, proc.output
        reply = results.get(timeout=WAIT_S)
        assert isinstance(reply, InferenceServerException), reply
        assert reply.status() == "StatusCode.UNAVAILABLE", reply  # grpc's "Cancelling all calls"
    assert f"{sig.name} received again: cancelling in-flight requests and exiting now" in proc.output


def test_unloads_past_the_exit_timeout_are_abandoned(stuck_repo: tuple[Path, Path]) -> None:
    repo, markers = stuck_repo
    with server_process(["--model-repository", str(repo), "--exit-timeout-secs", "1"]) as proc:
        results = _start_stuck_request(proc.url, markers)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 1, proc.output
        assert time.monotonic() - t0 < PROMPT_S, proc.output
        assert isinstance(results.get(timeout=WAIT_S), InferenceServerException)
    assert "'stuck' version 1 still unloading after" in proc.output
    assert "Traceback" not in proc.output


def test_log_file_that_cannot_be_opened_exits_1_naming_it(tmp_path: Path) -> None:
    # A dangling link passes the flag's own checks (its directory exists); opening it fails later.
    log_file = tmp_path / "hangar.log"
    log_file.symlink_to(tmp_path / "no-such-dir" / "hangar.log")
    done = run_cli(
        ["serve", "--model-repository", str(tmp_path), "--grpc-port", "0", "--allow-metrics", "false",
         "--log-file", str(log_file)]
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"--log-file '{log_file}'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_log_file_that_is_a_directory_exits_2_naming_it(tmp_path: Path) -> None:
    done = run_cli(["serve", "--model-repository", str(tmp_path), "--log-file", str(tmp_path)])
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"'{tmp_path}' is a directory" in done.stderr and "--log-file" in done.stderr
    assert "Traceback" not in done.stderr
