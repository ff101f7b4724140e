"""Inline execution: a cheap model's batches run on the event loop, a loop turn's budget at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence

from server.errors import Unavailable
from server.scheduling.batch import Batch
from server.scheduling.batch_plan import BatchingPolicy, ItemState, QueuedRequest, plan_batch
from server.scheduling.inline_gate import InlineGate
from server.scheduling.response_channel import ResponseChannel
from server.stats import ModelStats
from server.types import InferRequest, InferResponse

QUEUE_TIMEOUT = "Request timeout expired"
INLINE_BUDGET_NS = 2_000_000
"""Inline executes stop after this much of one loop turn; the rest waits for the next turn, so other
callbacks (other models' responses, new RPCs) are not starved by a burst."""
budget_clock = time.monotonic_ns
"""The clock INLINE_BUDGET_NS is measured on (tests replace it)."""


class InlineExecution:
    """DynamicBatcher's loop-side execution path (DESIGN.md decision 6 exception, see InlineGate).

    A mixin: the state below belongs to DynamicBatcher, which owns the queue, the lock and the instance.
    """

    _inline: InlineGate | None
    _backlog: deque[QueuedRequest] | None
    _executing: int
    _resume_flush: bool
    _model: str
    _policy: BatchingPolicy
    _stats: ModelStats
    _lock: threading.Lock
    _cond: threading.Condition
    _queue: deque[QueuedRequest]
    _queued: int
    _waiting: int
    _closed: bool
    _incoming: list[QueuedRequest]
    _flush_loop: asyncio.AbstractEventLoop | None

    def _release_instance(self) -> None:
        raise NotImplementedError

    def _run(
        self, instance: int, items: list[QueuedRequest], inline: bool = False
    ) -> list[tuple[ResponseChannel, InferResponse]]:
        raise NotImplementedError

    def _execute_timed(self, batch: Batch, inline: bool) -> Sequence[InferResponse | None]:
        raise NotImplementedError

    @staticmethod
    def _answer(items: Iterable[QueuedRequest], error: Exception) -> None:
        raise NotImplementedError

    def run_now(self, request: InferRequest) -> InferResponse | ResponseChannel | None:
        """Execute `request` at once, on the loop, if the gate is open and the instance idle with nothing
        queued: the unary fast path, without a queue entry or a hand-over. Returns its final response, or
        the channel it will arrive on (a model that answered through its response sender); None when
        nothing ran (the request must be submitted; submit also words any refusal)."""
        size = self._policy.shape_of(request)[0]
        if self._policy.max_batch_size and size > self._policy.max_batch_size:
            return None
        return self._run_alone(request, size, None)

    def _run_alone(
        self, request: InferRequest, size: int, channel: ResponseChannel | None
    ) -> InferResponse | ResponseChannel | None:
        """Execute one admitted request on the loop now if the gate is open and nothing else waits or
        runs (max_queue_delay is 0: an idle instance takes what is there); None when it must queue.
        Returns its final response, or `channel` (made here if None) when the backend answered there."""
        gate = self._inline
        if gate is None or not gate.open or self._incoming or self._backlog is not None:
            return None
        with self._lock:
            if self._closed or self._executing or self._queued:
                return None
            self._executing = 1
        request.times.queue_start_ns = time.monotonic_ns()
        batch = Batch(0, [request], [channel], [size], loop=asyncio.get_running_loop())
        try:
            result = self._execute_timed(batch, inline=True)[0]
        finally:
            self._release_instance()
        # None: answered through the channel, which the backend made (or a broken backend: made here,
        # it never ends, as a request of the queue path would not either)
        return batch.channel(0) if result is None else result

    def _flush_inline(self, items: list[QueuedRequest]) -> bool:
        """Execute `items` on the loop if the instance is idle; keep them for later if it is busy.

        DESIGN.md decision 6 exception: a cheap model's executes run on the loop (see InlineGate).
        False when the worker thread should take them (closed, or it has a queue to work through).
        """
        with self._lock:
            backlog = self._backlog
            if self._closed or (backlog is None and self._queued):
                return False
            if backlog is None and self._executing:  # the worker is finishing a batch: it flushes again
                self._incoming[:0] = items
                self._resume_flush = True
                return True
            live = [it for it in items if it.state is ItemState.PENDING]
            for it in live:
                it.state = ItemState.QUEUED
            self._queued += len(live)
            self._stats.queued(len(live))
            if backlog is not None:  # an inline burst continues next loop turn: these run after it
                backlog.extend(live)
                return True
            self._executing = 1
        self._run_inline(deque(live))
        return True

    def _run_inline(self, pending: deque[QueuedRequest]) -> None:
        """Execute `pending` on the loop for about INLINE_BUDGET_NS, then yield the loop: the rest
        continues on the next loop turn (the instance stays taken), so a burst cannot stall the loop."""
        try:
            left = self._drain_inline(pending)
        except BaseException:
            self._release_instance()
            raise
        dropped: list[QueuedRequest] = []
        with self._lock:
            gate_open = self._inline is not None and self._inline.open
            if left and gate_open and not self._closed and self._flush_loop is not None:
                self._backlog = left
                self._flush_loop.call_soon(self._continue_inline)
                return
            if left and not self._closed:  # the gate closed midway: the worker thread takes the rest
                self._queue.extend(left)
                if self._waiting:
                    self._cond.notify()
            elif left:
                dropped = list(left)
                for it in dropped:
                    it.state = ItemState.DROPPED
                self._queued -= len(dropped)
        self._release_instance()
        if dropped:
            self._stats.queued(-len(dropped))
            self._answer(dropped, Unavailable(f"model '{self._model}' is unloading"))

    def _continue_inline(self) -> None:
        with self._lock:
            pending, self._backlog = self._backlog, None
        if pending is not None:  # None: close() dropped the backlog meanwhile
            self._run_inline(pending)

    def _drain_inline(self, pending: deque[QueuedRequest]) -> deque[QueuedRequest]:
        """Runs the QUEUED items of `pending` as batches on the loop until they are done, the gate closes
        or this loop turn's budget is spent; returns those still QUEUED."""
        assert self._inline is not None
        started = budget_clock()
        while pending and self._inline.open:
            plan = plan_batch(pending, self._policy, time.monotonic_ns())
            if plan.expired:
                with self._lock:
                    self._queued -= len(plan.expired)
                self._stats.queued(-len(plan.expired))
                self._answer(plan.expired, Unavailable(QUEUE_TIMEOUT))
            if not plan.take:
                break
            with self._lock:  # a cancel from another thread may have dropped some meanwhile
                taken = [pending.popleft() for _ in range(min(plan.take, len(pending)))]
                taken = [it for it in taken if it.state is ItemState.QUEUED]
                for it in taken:
                    it.state = ItemState.RUNNING
                self._queued -= len(taken)
            if not taken:
                continue
            self._stats.queued(-len(taken))
            for channel, response in self._run(0, taken, inline=True):
                channel.put_nowait(response)
            if budget_clock() - started >= INLINE_BUDGET_NS:
                break  # at least one batch per turn, whatever the budget
        return deque(it for it in pending if it.state is ItemState.QUEUED)
