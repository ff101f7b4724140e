"""DynamicBatcher: queues a tensor model's requests and forms Triton-style batches for its instances."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from functools import partial

from server.errors import BackendError, Cancelled, InvalidInput, Unavailable
from server.scheduling.batch import Batch, ExecuteFn
from server.scheduling.batch_plan import BatchingPolicy, ItemState, QueuedRequest, plan_batch
from server.scheduling.inline_execution import QUEUE_TIMEOUT, InlineExecution
from server.scheduling.inline_gate import InlineGate
from server.scheduling.response_channel import ResponseChannel, deliver_all, error_response
from server.stats import ModelStats
from server.types import InferRequest, InferResponse

log = logging.getLogger(__name__)

QUEUE_FULL = "Exceeds maximum queue size"  # Triton's wording (core scheduler_utils.cc)
CANCELLED_IN_QUEUE = "Request was cancelled"


class DynamicBatcher(InlineExecution):
    """A FIFO queue served by one worker thread per model instance.

    The event loop only appends to the queue, once per loop turn; idle instance threads form the
    batches, and each executed batch costs the loop one wake-up to deliver all of its responses.
    `submit` must be called from one event loop at a time.

    With an `inline` gate (single instance only), requests execute on the event loop if the instance is
    idle and the gate says the model is cheap: the first request of a loop turn at once, inside `submit`,
    when nothing else waits; the rest of the turn's requests as batches when the turn ends. A burst runs
    for about INLINE_BUDGET_NS per loop turn and continues on the next turns.
    """

    def __init__(
        self,
        model: str,
        policy: BatchingPolicy,
        instances: Sequence[str],
        execute: ExecuteFn,
        stats: ModelStats,
        inline: InlineGate | None = None,
    ) -> None:
        if not instances:
            raise ValueError("a batcher needs at least one instance")
        if inline is not None and len(instances) != 1:
            raise ValueError("only a single-instance batcher can execute inline")
        self._inline = inline
        # Inline requests left for the next loop turn when a burst used up INLINE_BUDGET_NS; while set,
        # the instance counts as executing and new requests queue behind them.
        self._backlog: deque[QueuedRequest] | None = None
        self._executing = 0  # batches running now (worker threads, or inline on the loop)
        self._resume_flush = False  # requests wait in _incoming for the busy instance to finish
        self._model = model
        self._policy = policy
        self._execute = execute
        self._stats = stats
        self._lock = threading.Lock()  # holding it holds _cond, without Condition's Python wrappers
        self._cond = threading.Condition(self._lock)
        self._queue: deque[QueuedRequest] = deque()
        self._queued = 0  # QUEUED requests (the deque also holds dropped ones until they reach its head)
        self._waiting = 0  # instance threads blocked in wait()
        self._closed = False
        # Loop-side buffer of submitted requests, handed over by _flush at the end of the loop turn.
        self._incoming: list[QueuedRequest] = []
        self._flush_scheduled = False
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.alive = False
        """Started, not closed, and no instance thread has died: asked on every request, so a plain
        attribute, set where those change."""
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"hangar-{name}", daemon=True)
            for i, name in enumerate(instances)
        ]

    def start(self) -> None:
        self.alive = True  # first: a thread that dies at once must be able to clear it
        for t in self._threads:
            t.start()

    def submit(self, request: InferRequest) -> ResponseChannel:
        """Queue `request` (event loop only); its responses, or its rejection, arrive on the channel.

        Requests submitted in one turn of the event loop reach the instance threads together, with one
        lock and at most one wake-up, when the loop runs `_flush` at the end of that turn.
        """
        loop = asyncio.get_running_loop()
        channel = ResponseChannel(loop, request.cancel)
        size, key = self._policy.shape_of(request)
        rejection = self._admission_error(request, size)
        if rejection is not None:
            channel.put_nowait(error_response(request, rejection))
            return channel
        now = time.monotonic_ns()
        request.times.queue_start_ns = now
        item = QueuedRequest(request, channel, size, key)
        timeout_ns = self._policy.timeout_ns(request)
        if timeout_ns:
            item.deadline_ns = now + timeout_ns
        if self._flush_loop is not loop:  # a new loop (tests run several): hand over what an old one left
            self._flush()
            self._flush_loop = loop
        if not self._flush_scheduled:  # the first request of this loop turn
            self._flush_scheduled = True
            loop.call_soon(self._flush)
            # Under gRPC most requests arrive one per loop turn: the first runs at once if it can.
            answer = self._run_alone(request, size, channel) if self._inline is not None else None
            if answer is not None:  # the response itself, or the channel the backend answered on
                if isinstance(answer, InferResponse):
                    channel.put_nowait(answer)
                return channel
        self._incoming.append(item)
        request.cancel.on_cancel(partial(self._cancel_waiting, item))
        return channel

    def _release_instance(self) -> None:
        """A batch finished (worker or loop); reschedule a flush that waited for the instance."""
        with self._lock:
            self._executing -= 1
            resume = self._resume_flush and not self._executing
            self._resume_flush = self._resume_flush and not resume
            if self._closed or (self._queued and self._waiting):
                self._cond.notify_all()
        loop = self._flush_loop
        if resume and loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
                loop.call_soon_threadsafe(self._flush)

    def _admission_error(self, request: InferRequest, size: int) -> Exception | None:
        policy = self._policy
        if self._closed:
            return Unavailable(f"model '{self._model}' is unloading")
        if policy.max_queue_size and self._queued + len(self._incoming) >= policy.max_queue_size:
            return Unavailable(QUEUE_FULL)
        if policy.max_batch_size and size > policy.max_batch_size:
            return InvalidInput(
                f"batch size {size} of request '{request.id}' exceeds the max_batch_size "
                f"{policy.max_batch_size} of model '{self._model}'"
            )
        return None

    def _flush(self) -> None:
        """Move the loop's pending requests into the shared queue and wake idle instances (loop only)."""
        self._flush_scheduled = False
        items, self._incoming = self._incoming, []
        if not items:
            return
        inline = self._inline
        if inline is not None and (inline.open or self._backlog is not None) and self._flush_inline(items):
            return
        with self._lock:
            live = [it for it in items if it.state is ItemState.PENDING]
            closed = self._closed
            for it in live:
                it.state = ItemState.DROPPED if closed else ItemState.QUEUED
            if not closed and live:
                self._queue.extend(live)
                self._queued += len(live)
                self._stats.queued(len(live))  # under the lock: before any instance counts them out
                if self._waiting:
                    self._cond.notify(len(live))
        if closed:
            self._answer(live, Unavailable(f"model '{self._model}' is unloading"))

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the instance threads after their current batch; requests still queued fail Unavailable."""
        with self._lock:
            self._closed = True
            self.alive = False
            left = [it for it in self._queue if it.state is ItemState.QUEUED]
            if self._backlog is not None:  # between two inline loop turns: nothing executes right now
                left += [it for it in self._backlog if it.state is ItemState.QUEUED]
                self._backlog = None
                self._executing -= 1
            for it in left:
                it.state = ItemState.DROPPED
            self._queue.clear()
            self._queued = 0
            self._cond.notify_all()
            # an execute running inline on the loop (another thread) must end before the model goes away
            self._cond.wait_for(lambda: not self._executing, timeout_s)
        self._stats.queued(-len(left))
        self._answer(left, Unavailable(f"model '{self._model}' is unloading"))
        for t in self._threads:
            if t.ident is not None and t is not threading.current_thread():
                t.join(timeout_s)
                if t.is_alive():
                    log.warning("instance thread %s still busy after %.0fs; leaving it", t.name, timeout_s)

    def _cancel_waiting(self, item: QueuedRequest) -> None:
        """The client cancelled: answer at once if the request has not started (any thread)."""
        with self._lock:
            state = item.state
            if state is not ItemState.PENDING and state is not ItemState.QUEUED:
                return
            item.state = ItemState.DROPPED
            if state is ItemState.QUEUED:
                self._queued -= 1
        if state is ItemState.QUEUED:
            self._stats.queued(-1)
        item.channel.push(error_response(item.request, Cancelled(CANCELLED_IN_QUEUE)))

    @staticmethod
    def _answer(items: Iterable[QueuedRequest], error: Exception) -> None:
        """Fail requests already marked DROPPED; any thread."""
        deliver_all((it.channel, error_response(it.request, error)) for it in items)

    def _work(self, instance: int) -> None:
        try:
            while True:
                items = self._next_batch()
                if items is None:
                    return
                try:
                    pairs = self._run(instance, items)
                finally:
                    if self._inline is not None:
                        self._release_instance()
                deliver_all(pairs)
        except BaseException:
            self.alive = False
            log.exception("instance thread of model '%s' died; the model is no longer ready", self._model)

    def _next_batch(self) -> list[QueuedRequest] | None:
        """Block until a batch is due; None once closed."""
        with self._lock:
            while True:
                if self._closed:
                    return None
                plan = plan_batch(self._queue, self._policy, time.monotonic_ns())
                if plan.expired:
                    self._queued -= len(plan.expired)
                    self._cond.release()
                    try:
                        self._stats.queued(-len(plan.expired))
                        self._answer(plan.expired, Unavailable(QUEUE_TIMEOUT))
                    finally:
                        self._cond.acquire()
                    continue
                if plan.take:
                    items = self._pop(plan.take)
                    if self._inline is not None:
                        self._executing += 1
                    if self._queued and self._waiting:  # more is queued: let an idle instance look at it
                        self._cond.notify()
                    break
                self._waiting += 1
                try:
                    self._cond.wait(plan.wait_ns / 1e9 if plan.wait_ns else None)
                finally:
                    self._waiting -= 1
        self._stats.queued(-len(items))
        return items

    def _pop(self, count: int) -> list[QueuedRequest]:
        taken: list[QueuedRequest] = []
        while len(taken) < count:
            item = self._queue.popleft()
            if item.state is ItemState.QUEUED:
                item.state = ItemState.RUNNING
                taken.append(item)
        self._queued -= count
        return taken

    def _run(
        self, instance: int, items: list[QueuedRequest], inline: bool = False
    ) -> list[tuple[ResponseChannel, InferResponse]]:
        """Execute one batch of queued requests; returns the responses to deliver."""
        batch = Batch(
            instance, [it.request for it in items], [it.channel for it in items], [it.size for it in items]
        )
        results = self._execute_timed(batch, inline)
        return [(it.channel, res) for it, res in zip(items, results, strict=True) if res is not None]

    def _execute_timed(self, batch: Batch, inline: bool) -> Sequence[InferResponse | None]:
        """Execute one batch: one result per request (None where the backend answered through the
        request's channel itself). Stamps the requests' times, updates stats and the gate."""
        gate = self._inline
        mark = gate.begin(inline) if gate is not None else None
        start = time.monotonic_ns()
        requests = batch.requests
        results: Sequence[InferResponse | None] | None
        try:
            results = self._execute(batch)
            if results is None:
                results = [None] * len(requests)
            elif len(results) != len(requests):
                raise BackendError(
                    f"model '{self._model}' produced {len(results)} responses for a batch of {len(requests)}"
                )
        except (Exception, SystemExit) as e:  # a failing model must never take its instance thread down
            results = [error_response(r, e) for r in requests]
        end = time.monotonic_ns()
        if gate is not None and mark is not None:
            gate.end(mark, start, end, len(requests), inline)
        input_end = batch.input_end_ns or start
        output_start = batch.output_start_ns or end
        for r in requests:
            t = r.times
            t.compute_start_ns, t.compute_input_end_ns = start, input_end
            t.compute_output_start_ns, t.compute_end_ns = output_start, end
        self._stats.executed(batch.size, input_end - start, output_start - input_end, end - output_start)
        return results
