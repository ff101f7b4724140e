"""ModelStreamInfer: many requests on one bidi stream, each served by its own task (PROTOCOL.md 2).

Non-decoupled requests answer exactly once, in request order; decoupled responses go out as produced.
A failed request becomes an `error_message` and the stream stays open, unless the client opened it with
metadata `triton_grpc_error: true`, which closes the stream with the error's status instead.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from server.app import request_accounting
from server.app.infer_handler import prepare, stamp
from server.app.telemetry_port import RequestObserver
from server.errors import BackendError, Cancelled, HangarError, Unavailable
from server.protocol.convert import stream_error_to_pb, stream_response_to_pb
from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.parameters import ENABLE_EMPTY_FINAL
from server.repository.handle import ModelHandle
from server.repository.manager import ModelManager
from server.stats import ResponseOutcome
from server.types import InferRequest, InferResponse

GRPC_ERROR_HEADER = "triton_grpc_error"
_END = object()


class _Slot:
    """The place of one non-decoupled request in the stream's response order."""

    __slots__ = ("message",)

    def __init__(self) -> None:
        self.message: Any = None


class StreamSession:
    """One ModelStreamInfer call. `run` writes; a reader task starts one task per request."""

    def __init__(
        self,
        manager: ModelManager,
        observer: RequestObserver | None,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self._manager = manager
        self._observer = observer
        self._context = context
        metadata = context.invocation_metadata() or ()
        self._grpc_errors = any(k == GRPC_ERROR_HEADER and v == "true" for k, v in metadata)
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._ordered: deque[_Slot] = deque()
        self._tasks: dict[asyncio.Task[None], InferRequest] = {}
        self._open = 1  # the reader, plus one per request in flight; the stream ends at zero
        self._reader: asyncio.Task[None] | None = None
        self._draining = False
        self._half_closed = False

    async def run(self, requests: AsyncIterator[pb.ModelInferRequest]) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read(requests))
        # A done callback, not a `finally` in _read: a task cancelled before its first step never
        # runs its body, and the stream would then wait forever for the reader's share to close.
        self._reader.add_done_callback(lambda _task: self._close_one())
        if self._draining:
            self._reader.cancel()
        try:
            while True:
                item = await self._out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item  # status_boundary closes the stream with its status
                await self._context.write(item)
        finally:
            # Client cancel, a grpc-error close or shutdown's deadline: cancel whatever still runs,
            # the requests' tokens first so backends see `is_cancelled()` before the task unwinds.
            self._reader.cancel()
            for task, request in list(self._tasks.items()):
                request.cancel.cancel()
                task.cancel()

    def drain(self) -> None:
        """Shutdown: read no more requests, finish those in flight, then close with UNAVAILABLE."""
        self._draining = True
        if self._reader is not None and not self._half_closed:
            self._reader.cancel()

    async def _read(self, requests: AsyncIterator[pb.ModelInferRequest]) -> None:
        try:
            async for message in requests:
                self._start(message)
            self._half_closed = True
        except Exception as e:  # a broken read ends the stream with that error
            self._out.put_nowait(e)

    def _close_one(self) -> None:
        self._open -= 1
        if self._open == 0:
            if self._draining and not self._half_closed:
                self._out.put_nowait(Unavailable("the server is shutting down: stream closed"))
            else:
                self._out.put_nowait(_END)

    def _start(self, message: pb.ModelInferRequest) -> None:
        try:
            handle = self._manager.acquire(message.model_name, message.model_version)
        except HangarError as e:
            self._error(e, message.id, None if self._grpc_errors else self._new_slot())
            return
        slot = None if handle.config.decoupled else self._new_slot()
        try:
            request = prepare(handle, message, self._context, self._observer)
        except Exception as e:
            request_accounting.rejected(handle)
            handle.release()
            self._error(e, message.id, slot)
            return
        self._open += 1
        task = asyncio.get_running_loop().create_task(self._serve(handle, request, slot))
        self._tasks[task] = request
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def _new_slot(self) -> _Slot:
        slot = _Slot()
        self._ordered.append(slot)
        return slot

    def _emit(self, message: Any, slot: _Slot | None) -> None:
        if slot is None:
            self._out.put_nowait(message)
            return
        slot.message = message
        ordered = self._ordered
        while ordered and ordered[0].message is not None:
            self._out.put_nowait(ordered.popleft().message)

    def _error(self, error: BaseException, request_id: str, slot: _Slot | None) -> None:
        if self._grpc_errors:
            self._out.put_nowait(error)
            return
        self._emit(stream_error_to_pb(error, request_id), slot)

    async def _serve(self, handle: ModelHandle, request: InferRequest, slot: _Slot | None) -> None:
        error: BaseException | None = None
        sent = 0
        # Per-response statistics are for decoupled models only: nothing extra on the unary path.
        timer = request_accounting.ResponseTimer(handle, request) if slot is None else None
        try:
            with handle:
                try:
                    sent = await self._respond(handle, request, slot, timer)
                except asyncio.CancelledError as e:
                    request.cancel.cancel()
                    error = e
                    if timer is not None:
                        timer.record(ResponseOutcome.CANCEL)
                    raise
                except Exception as e:
                    error = e
                    self._error(e, request.id, slot)
                finally:
                    request_accounting.finish(handle, request, error, sent, self._observer)
        finally:
            self._close_one()

    async def _respond(
        self,
        handle: ModelHandle,
        request: InferRequest,
        slot: _Slot | None,
        timer: request_accounting.ResponseTimer | None,
    ) -> int:
        """Sends the request's responses; returns how many. A response with `error` raises it."""
        empty_final = request.parameters.get(ENABLE_EMPTY_FINAL) is True
        sent = 0
        final_seen = False
        async for response in handle.backend.infer(request):
            produced = time.monotonic_ns() if timer is not None else 0
            if response.error is not None:
                if timer is not None:
                    cancelled = isinstance(response.error, Cancelled)
                    timer.record(ResponseOutcome.CANCEL if cancelled else ResponseOutcome.FAIL)
                raise response.error
            final_seen = final_seen or response.final
            if slot is not None and sent:
                continue  # a non-decoupled model answers once; later responses are a backend bug
            if response.is_empty_final and not empty_final and slot is None:
                if timer is not None:
                    timer.record(ResponseOutcome.EMPTY)
                continue
            request_accounting.first_response(handle, request)
            self._emit(stream_response_to_pb(stamp(response, handle, request)), slot)
            sent += 1
            if timer is not None:
                empty = response.is_empty_final
                timer.record(ResponseOutcome.EMPTY if empty else ResponseOutcome.SUCCESS, produced)
        if slot is not None and not sent:
            raise BackendError(f"model '{handle.name}' version {handle.version} produced no response")
        if slot is None and not final_seen and empty_final:
            final = InferResponse(handle.name, str(handle.version), request.id, final=True)
            self._emit(stream_response_to_pb(final), None)
            sent += 1
        return sent


class StreamHandler:
    """Serves ModelStreamInfer calls and tracks the open ones so shutdown can drain them."""

    def __init__(self, manager: ModelManager, observer: RequestObserver | None) -> None:
        self._manager = manager
        self._observer = observer
        self._sessions: set[StreamSession] = set()
        self._draining = False

    async def model_stream_infer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> None:
        session = StreamSession(self._manager, self._observer, context)
        self._sessions.add(session)
        try:
            if self._draining:
                session.drain()
            await session.run(requests)
        finally:
            self._sessions.discard(session)

    def begin_drain(self) -> None:
        self._draining = True
        for session in list(self._sessions):
            session.drain()
