"""Version drops end to end: `hangar build demo` into a repository a polling server is serving.

A new version built while 16 streaming clients run takes over with zero failed requests, new requests get
its (different) greedy output, and the old version unloads only after its streams finish. A build killed
half way is never seen by the server, the next build removes what it left, and deleting the new version
dir rolls back.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from builders.interrupts import PAUSE_AT_ENV, PAUSE_ENV
from server.app.main import main
from tests.support.server import PROJECT_ROOT, RunningServer, run_cli, running_server, wait_until

pytestmark = pytest.mark.slow

MODEL = "demo_llm"
PROMPT = "The server hums"
CLIENTS = 16
SHORT = 12
"""Tokens per client request: many requests on each version."""
LONG = 960
"""Tokens of the stream that must outlive the swap: nearly the demo model's 1024 positions."""
TIMEOUT_S = 120.0


@dataclass
class Outcome:
    started: float
    version: str = ""
    text: str = ""
    error: str | None = None
    chunks: int = 0


def _inputs(max_tokens: int) -> list[grpcclient.InferInput]:
    values = {
        "text_input": ("BYTES", np.array([[PROMPT.encode()]], dtype=object)),
        "max_tokens": ("INT32", np.array([[max_tokens]], dtype=np.int32)),
        "stream": ("BOOL", np.array([[True]])),
        "temperature": ("FP32", np.array([[0.0]], dtype=np.float32)),
    }
    tensors = []
    for name, (dtype, array) in values.items():
        tensor = grpcclient.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


class StreamClient:
    """One ModelStreamInfer stream of its own, one request at a time, each ended by the empty final."""

    def __init__(self, url: str) -> None:
        self._client = grpcclient.InferenceServerClient(url)
        self._items: queue.Queue[tuple[object, object]] = queue.Queue()
        self._client.start_stream(callback=lambda result, error: self._items.put((result, error)))
        self._ids = 0

    def request(self, max_tokens: int, on_first: Callable[[], None] | None = None) -> Outcome:
        self._ids += 1
        outcome = Outcome(started=time.monotonic())
        self._client.async_stream_infer(
            MODEL, _inputs(max_tokens), request_id=f"r{self._ids}", enable_empty_final_response=True
        )
        parts: list[str] = []
        while True:
            result, error = self._items.get(timeout=TIMEOUT_S)
            if error is not None:
                outcome.error = str(error)
                return outcome
            response = result.get_response()  # type: ignore[attr-defined]
            if outcome.version and response.model_version != outcome.version:
                outcome.error = (
                    f"one stream answered by versions {outcome.version} and {response.model_version}"
                )
            outcome.version = response.model_version
            text = result.as_numpy("text_output")  # type: ignore[attr-defined]
            if text is not None:
                parts.append(bytes(text.reshape(-1)[0]).decode())
                outcome.chunks += 1
                if outcome.chunks == 1 and on_first is not None:
                    on_first()
            if response.parameters["triton_final_response"].bool_param:
                outcome.text = "".join(parts)
                return outcome

    def close(self) -> None:
        self._client.stop_stream()
        self._client.close()


def _client_loop(url: str, stop: threading.Event, outcomes: list[Outcome]) -> None:
    client = StreamClient(url)
    try:
        while not stop.is_set():
            outcomes.append(client.request(SHORT))
    finally:
        client.close()


class LongStream(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(name="long-stream", daemon=True)
        self.url = url
        self.first = threading.Event()
        self.done = threading.Event()
        self.outcome = Outcome(started=0.0, error="not run")

    def run(self) -> None:
        client = StreamClient(self.url)
        try:
            self.outcome = client.request(LONG, on_first=self.first.set)
        finally:
            self.done.set()
            client.close()


def _states(client: grpcclient.InferenceServerClient) -> dict[str, tuple[str, str]]:
    index = client.get_model_repository_index()
    return {m.version: (m.state, m.reason) for m in index.models if m.name == MODEL}


class PausingBuild:
    """`python -m server build demo --seed 1 --version 2` that pauses at `at` (see builders/interrupts.py).

    Started before the server, so that its start-up (importing torch) overlaps the server's.
    """

    def __init__(self, repo: Path, workdir: Path, at: str) -> None:
        self.pause, self.log = workdir / "paused.json", workdir / "build.log"
        env = {**os.environ, PAUSE_ENV: str(self.pause), PAUSE_AT_ENV: at}
        argv = [sys.executable, "-m", "server", "build", "demo", "--repository", str(repo), "--seed", "1"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*argv, "--version", "2"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def paused(self) -> dict[str, str]:
        """The pause file's content (pid, staging) once the build wrote it; empty before."""
        if self.pause.exists():
            return {k: str(v) for k, v in json.loads(self.pause.read_text()).items()}
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"the build exited with {code} before pausing:\n{self.log.read_text()}")
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _poll_twice(srv: RunningServer) -> None:
    """Two rescans: a new version dir is loaded only once two scans saw it unchanged."""
    for _ in range(2):
        srv.call(srv.manager.poll_once())


@pytest.fixture(scope="module")
def built_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("v1")
    assert main(["build", "demo", "--repository", str(repo), "--seed", "0", "--progress", "off"]) == 0
    return repo / MODEL


@pytest.fixture
def repo(built_v1: Path, tmp_path: Path) -> Path:
    """A repository holding demo_llm version 1 (seed 0)."""
    shutil.copytree(built_v1, tmp_path / "repo" / MODEL)
    return tmp_path / "repo"


def test_a_new_version_takes_over_under_load_with_no_failed_request(repo: Path, tmp_path: Path) -> None:
    build = PausingBuild(repo, tmp_path, at="before-drop")
    stop, outcomes, long = threading.Event(), list[Outcome](), None
    try:
        with running_server(repo, model_control_mode="poll", repository_poll_secs=0.1) as srv:
            index = grpcclient.InferenceServerClient(srv.url)
            clients = [
                threading.Thread(target=_client_loop, args=(srv.url, stop, outcomes)) for _ in range(CLIENTS)
            ]
            for thread in clients:
                thread.start()
            long = LongStream(srv.url)
            try:
                wait_until(lambda: len(outcomes) >= CLIENTS, TIMEOUT_S, what="answers to the first requests")
                wait_until(build.paused, TIMEOUT_S, what="the version 2 build to be ready to drop")
                long.start()
                assert long.first.wait(TIMEOUT_S), "the long stream got no first token"
                build.pause.unlink()  # the build goes on: manifest, rename to 2
                assert build.proc.wait(TIMEOUT_S) == 0, build.log.read_text()
                wait_until(lambda: _states(index).get("2", ("",))[0] == "READY", TIMEOUT_S, interval_s=0.005)
                long_finished_before_swap = long.done.is_set()
                at_swap, swapped = _states(index), time.monotonic()
                wait_until(
                    lambda: sum(o.started > swapped for o in outcomes) >= CLIENTS,
                    TIMEOUT_S,
                    what="requests on v2",
                )
            finally:
                stop.set()
                for thread in clients:
                    thread.join(TIMEOUT_S)
            assert long.done.wait(TIMEOUT_S)
            unloaded = wait_until(lambda: _states(index).get("1") == ("UNAVAILABLE", "unloaded"), TIMEOUT_S)
            index.close()
    finally:
        build.stop()

    failed = [o for o in [*outcomes, long.outcome] if o.error]
    assert failed == [], f"{len(failed)} of {len(outcomes) + 1} requests failed: {failed[:3]}"
    assert not long_finished_before_swap, "the long stream ended before version 2 took over"
    assert at_swap["1"][0] == "UNLOADING" and at_swap["2"][0] == "READY"  # v1 drains its stream
    assert long.outcome.version == "1" and long.outcome.chunks > 1 and unloaded
    texts = {v: {o.text for o in outcomes if o.version == v} for v in ("1", "2")}
    assert texts["1"] and texts["2"] and not texts["1"] & texts["2"], texts
    late = [o.version for o in outcomes if o.started > swapped]
    assert late and set(late) == {"2"}


def test_a_killed_build_is_never_served_the_next_build_cleans_up_and_rollback_works(
    repo: Path, tmp_path: Path
) -> None:
    model_dir = repo / MODEL
    build = PausingBuild(repo, tmp_path, at="first-write")
    try:
        with running_server(repo, model_control_mode="poll", repository_poll_secs=0.1) as srv:
            index = grpcclient.InferenceServerClient(srv.url)
            paused = wait_until(build.paused, TIMEOUT_S, what="the build to write its first files")
            staging = Path(paused["staging"])
            assert staging.parent == model_dir and any(staging.iterdir())
            _poll_twice(srv)  # the poller has looked at the half-written build twice
            assert _states(index) == {"1": ("READY", "")} and srv.manager.ready_versions(MODEL) == [1]
            build.proc.send_signal(signal.SIGKILL)
            assert build.proc.wait(TIMEOUT_S) == -signal.SIGKILL
            visible = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))
            assert staging.is_dir() and visible == ["1", "config.pbtxt"]
            _poll_twice(srv)
            assert _states(index) == {"1": ("READY", "")}

            result = run_cli(["build", "demo", "--repository", str(repo), "--seed", "1"])
            assert result.returncode == 0, result.stderr
            assert f"removing {staging.name}, left by a build that did not finish" in result.stdout
            assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "config.pbtxt"]
            wait_until(lambda: _states(index).get("2") == ("READY", ""), TIMEOUT_S, what="version 2 to load")

            shutil.rmtree(model_dir / "2")  # roll back (docs/OPERATIONS.md): version 1 serves again
            wait_until(
                lambda: (
                    _states(index).get("1") == ("READY", "") and _states(index).get("2", ("",))[0] != "READY"
                ),
                TIMEOUT_S,
                what="the rollback to version 1",
            )
            index.close()
    finally:
        build.stop()
