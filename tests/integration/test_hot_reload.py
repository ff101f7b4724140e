"""The hot-reload acceptance test: a new version dropped into a polled repository under load, the old one
removed, and not one request fails; every client moves to the new version and never goes back."""

from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient

from tests.support.python_models import VERSIONED_CODE, write_versioned
from tests.support.server import running_server, wait_until
from tests.support.tensors import fp32

WAIT_S = 90.0
MODEL = "hot"


class Client(threading.Thread):
    """Sends requests back to back until stopped; records each response's VERSION or the failure."""

    def __init__(self, url: str, stop: threading.Event, streaming: bool, index: int) -> None:
        super().__init__(name=f"{'stream' if streaming else 'unary'}-client-{index}", daemon=True)
        self.url, self.stop, self.streaming, self.index = url, stop, streaming, index
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def snapshot(self) -> list[int]:
        with self._lock:
            return list(self.versions)

    def _record(self, version: int) -> None:
        with self._lock:
            self.versions.append(version)

    def run(self) -> None:
        client = grpcclient.InferenceServerClient(self.url)
        try:
            self._stream(client) if self.streaming else self._unary(client)
        except Exception as e:  # any failure is the test's failure
            self.failures.append(f"{self.name}: {type(e).__name__}: {e}")
        finally:
            client.close()

    def _unary(self, client: grpcclient.InferenceServerClient) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            result = client.infer(MODEL, [fp32("X", [float(n)])], request_id=f"{self.name}-{n}")
            assert result.as_numpy("Y").tolist() == [float(n)]
            self._record(int(result.as_numpy("VERSION")[0]))

    def _stream(self, client: grpcclient.InferenceServerClient) -> None:
        replies: queue.Queue[Any] = queue.Queue()
        client.start_stream(callback=lambda result, error: replies.put(error or result))
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                client.async_stream_infer(MODEL, [fp32("X", [float(n)])], request_id=f"{self.name}-{n}")
                reply = replies.get(timeout=WAIT_S)
                if isinstance(reply, Exception):
                    raise reply
                assert reply.get_response().id == f"{self.name}-{n}"
                self._record(int(reply.as_numpy("VERSION")[0]))
        finally:
            client.stop_stream()


def drop_version(model_dir: Path, version: int) -> None:
    """Atomic drop: write the version into a hidden staging dir, then rename it into place."""
    staging = model_dir / f".staging-{version}"
    staging.mkdir()
    (staging / "model.py").write_text(VERSIONED_CODE)
    os.rename(staging, model_dir / str(version))


def test_new_version_swaps_in_under_load_without_failures(tmp_path: Path) -> None:
    model_dir = write_versioned(tmp_path, MODEL, versions=(1,))
    with running_server(tmp_path, model_control_mode="poll", repository_poll_secs=0.2) as srv:
        stop = threading.Event()
        clients = [Client(srv.url, stop, streaming=i % 2 == 1, index=i) for i in range(16)]
        for c in clients:
            c.start()
        try:
            wait_until(lambda: all(len(c.snapshot()) >= 3 for c in clients), WAIT_S, what="clients to run")
            drop_version(model_dir, 2)
            wait_until(
                lambda: all(c.snapshot()[-1:] == [2] for c in clients) or any(c.failures for c in clients),
                WAIT_S, what="every client to reach version 2",
            )  # fmt: skip
            shutil.rmtree(model_dir / "1")
            marks = [len(c.snapshot()) for c in clients]
            wait_until(
                lambda: all(len(c.snapshot()) >= m + 20 for c, m in zip(clients, marks, strict=True))
                or any(c.failures for c in clients),
                WAIT_S, what="every client to keep going after the old version was removed",
            )  # fmt: skip
        finally:
            stop.set()
            for c in clients:
                c.join(WAIT_S)
        failures = [f for c in clients for f in c.failures]
        assert failures == []
        for c in clients:
            versions = c.snapshot()
            first_new = versions.index(2)
            assert set(versions[:first_new]) == {1}, c.name
            assert set(versions[first_new:]) == {2}, f"{c.name} went back to version 1 after the swap"
        client = grpcclient.InferenceServerClient(srv.url)
        rows = {m.version: m.state for m in client.get_model_repository_index().models if m.name == MODEL}
        assert rows.get("2") == "READY" and rows.get("1") != "READY"
        assert client.is_model_ready(MODEL) and not client.is_model_ready(MODEL, "1")
