"""A backend whose behaviour each request scripts through its parameters, for testing the app's transport.

Request parameters (all optional):
- `delay_ms` (int): wait this long before each response;
- `responses` (int, decoupled models): how many data responses; `empty_final` (bool): end with a
  flags-only final instead of marking the last data response final;
- `fail` (str): answer with an error response carrying this text (BackendError);
- `reject` (str): answer with Unavailable (what a full queue does);
- `crash` (str): raise a plain RuntimeError from `infer` (a backend bug);
- `block` (bool): wait until the request is cancelled, then answer Cancelled.

Every response echoes input `IN` as output `OUT` (plus the response index) and reports the version in
response parameter `version`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from server.backends.base import Backend, BackendRegistry
from server.errors import BackendError, Cancelled, Unavailable
from server.types import InferRequest, InferResponse, Tensor


@dataclass
class Journal:
    """What the scripted models saw, shared between the server's loop and the test thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    blocked: threading.Event = field(default_factory=threading.Event)

    def record(self, bucket: list[str], request_id: str) -> None:
        with self.lock:
            bucket.append(request_id)


class ScriptedBackend(Backend):
    journal: Journal

    def load(self) -> None:
        pass

    async def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        p = request.parameters
        self.journal.record(self.journal.started, request.id)
        if p.get("block"):
            yield await self._wait_cancel(request)
            return
        if "fail" in p:
            yield self._response(request, 0, final=True, error=BackendError(str(p["fail"])))
            return
        if "crash" in p:
            raise RuntimeError(str(p["crash"]))
        if "reject" in p:
            yield self._response(request, 0, final=True, error=Unavailable(str(p["reject"])))
            return
        decoupled = self.spec.config.decoupled
        count = int(p.get("responses", 1)) if decoupled else 1
        empty_final = bool(p.get("empty_final")) and decoupled
        delay = int(p.get("delay_ms", 0)) / 1000
        for k in range(count):
            if delay:
                await asyncio.sleep(delay)
            yield self._response(request, k, final=(k == count - 1 and not empty_final))
        if empty_final:
            yield InferResponse(request.model_name, request.model_version, request.id, final=True)

    async def _wait_cancel(self, request: InferRequest) -> InferResponse:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def cancelled() -> None:  # runs on whichever thread cancels the token
            self.journal.record(self.journal.cancelled, request.id)
            loop.call_soon_threadsafe(done.set)

        request.cancel.on_cancel(cancelled)
        self.journal.blocked.set()
        await done.wait()
        return self._response(request, 0, final=True, error=Cancelled("request cancelled"))

    def _response(
        self, request: InferRequest, index: int, final: bool, error: Exception | None = None
    ) -> InferResponse:
        outputs = []
        if error is None and "IN" in request.inputs:
            outputs = [Tensor("OUT", request.inputs["IN"].datatype, request.inputs["IN"].data + index)]
        return InferResponse(
            request.model_name, request.model_version, request.id, outputs=outputs,
            parameters={"version": self.spec.version}, final=final, error=error,
        )  # fmt: skip


def scripted_registry(journal: Journal) -> BackendRegistry:
    """A registry whose `scripted` backend records into `journal`."""
    cls = type("JournaledScriptedBackend", (ScriptedBackend,), {"journal": journal})
    registry = BackendRegistry()
    registry.register("scripted", cls)
    return registry


def write_model(
    repo: Path, name: str, decoupled: bool = False, versions: tuple[int, ...] = (1,), max_batch_size: int = 0
) -> Path:
    """A scripted model directory: FP32 `IN` [-1] -> FP32 `OUT` [-1]."""
    model = repo / name
    for v in versions:
        (model / str(v)).mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(
        f'backend: "scripted"\nmax_batch_size: {max_batch_size}\n'
        'input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]\n'
        f"model_transaction_policy {{ decoupled: {str(decoupled).lower()} }}\n"
    )
    return model
