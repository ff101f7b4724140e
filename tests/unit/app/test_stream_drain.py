"""A stream opened while the server drains is closed with UNAVAILABLE at once, not after the exit timeout."""

from __future__ import annotations

import contextlib
import queue
import time
from pathlib import Path
from typing import Any

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.support.server import running_server
from tests.support.tensors import fp32
from tests.unit.app.scripted_backend import Journal, scripted_registry, write_model


def test_stream_opened_during_drain_closes_with_unavailable(tmp_path: Path) -> None:
    write_model(tmp_path, "plain")
    with running_server(tmp_path, registry=scripted_registry(Journal()), exit_timeout_secs=30) as srv:

        async def begin_drain() -> None:
            assert srv.server._servicer is not None
            srv.server._servicer.begin_drain()

        srv.call(begin_drain())
        client = grpcclient.InferenceServerClient(srv.url)
        items: queue.Queue[tuple[Any, Any]] = queue.Queue()
        client.start_stream(callback=lambda result, error: items.put((result, error)))
        started = time.monotonic()
        # The server may close the stream before the client writes: the callback still says why.
        with contextlib.suppress(InferenceServerException):
            client.async_stream_infer("plain", [fp32("IN", [1.0, 2.0])], request_id="late")
        _, error = items.get(timeout=10)
        # Well under the 30 s exit timeout: the stream did not wait for it.
        assert time.monotonic() - started < 10
        assert error is not None and error.status() == "StatusCode.UNAVAILABLE", error
        assert "shutting down" in error.message()
        client.stop_stream()
        client.close()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__]))
