"""DynamicBatcher: batch formation, delays, preferred sizes, queue limits, cancellation and instances."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np
import pytest

from server.errors import BackendError, Cancelled, StatusKind, Unavailable
from server.repository.model_config import DynamicBatching, ModelConfig, QueuePolicy, TensorConfig
from server.scheduling.batch import Batch
from server.scheduling.batch_plan import BatchingPolicy
from server.scheduling.dynamic_batcher import QUEUE_FULL, DynamicBatcher
from server.scheduling.response_channel import ResponseChannel
from server.stats import ModelStats
from server.types import DataType, InferRequest, InferResponse, Tensor

WAIT_S = 10.0  # upper bound for anything that should happen promptly; never reached when things work


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def request(i: int, rows: int = 1, cols: int = 4) -> InferRequest:
    data = np.full((rows, cols), i, dtype=np.float32)
    return InferRequest("m", "1", str(i), {"X": Tensor("X", DataType.FP32, data)})


def echo(r: InferRequest) -> InferResponse:
    return InferResponse(
        r.model_name, r.model_version, r.id, [Tensor("Y", DataType.FP32, r.inputs["X"].data)]
    )


class Recorder:
    """An execute function that records batches, echoes X as Y, and can hold executions at a gate."""

    def __init__(self, gated: bool = False, fail_ids: Sequence[str] = ()) -> None:
        self.batches: list[list[str]] = []
        self.instances: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.fail_ids = set(fail_ids)
        self.lock = threading.Lock()

    def __call__(self, batch: Batch) -> list[InferResponse | None]:
        with self.lock:
            self.batches.append([r.id for r in batch.requests])
            self.instances.append(batch.instance)
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if self.fail_ids & {r.id for r in batch.requests}:
            raise RuntimeError("boom")
        return [echo(r) for r in batch.requests]


def make(
    execute: Callable[[Batch], Any],
    policy: BatchingPolicy,
    instances: int = 1,
    stats: ModelStats | None = None,
) -> DynamicBatcher:
    b = DynamicBatcher("m", policy, [f"m_0_{i}" for i in range(instances)], execute, stats or ModelStats())
    b.start()
    return b


async def one(channel: ResponseChannel) -> InferResponse:
    responses = [r async for r in channel]
    assert len(responses) == 1 and responses[0].final
    return responses[0]


async def wait_for_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT_S)


def test_policy_from_config() -> None:
    tensors = (TensorConfig("X", DataType.FP32, (-1,)),)
    db = DynamicBatching((2, 4), 100, default_queue_policy=QueuePolicy(max_queue_size=3))
    p = BatchingPolicy.from_config(ModelConfig("m", max_batch_size=8, inputs=tensors, dynamic_batching=db))
    assert p.dynamic and p.max_batch_size == 8 and p.preferred_batch_sizes == {2, 4}
    assert p.max_queue_delay_ns == 100_000 and p.max_queue_size == 3 and p.shape_sensitive
    assert not BatchingPolicy.from_config(ModelConfig("m", max_batch_size=8)).dynamic


def test_single_request_round_trip_stamps_times_and_stats() -> None:
    stats = ModelStats()
    rec = Recorder()

    async def main() -> InferResponse:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True), stats=stats)
        req = request(1)
        resp = await one(b.submit(req))
        b.close()
        t = req.times
        assert 0 < t.queue_start_ns <= t.compute_start_ns <= t.compute_input_end_ns
        assert t.compute_input_end_ns <= t.compute_output_start_ns <= t.compute_end_ns
        return resp

    resp = run(main())
    assert resp.error is None and resp.id == "1"
    np.testing.assert_array_equal(resp.outputs[0].data, np.full((1, 4), 1, np.float32))
    snap = stats.snapshot()
    assert snap.execution_count == 1 and snap.pending == 0 and 1 in snap.batches


def test_requests_queued_behind_a_busy_instance_form_batches_up_to_max() -> None:
    rec = Recorder(gated=True)

    async def main() -> None:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True))
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        rest = [b.submit(request(i)) for i in range(1, 7)]
        rec.gate.set()
        for r in await asyncio.gather(one(first), *(one(c) for c in rest)):
            assert r.error is None
        b.close()

    run(main())
    assert rec.batches == [["0"], ["1", "2", "3", "4"], ["5", "6"]]


def test_batch_size_counts_rows_not_requests() -> None:
    rec = Recorder(gated=True)

    async def main() -> None:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True))
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        rest = [b.submit(request(1, rows=3)), b.submit(request(2, rows=2)), b.submit(request(3, rows=2))]
        rec.gate.set()
        outs = await asyncio.gather(one(first), *(one(c) for c in rest))
        assert outs[1].outputs[0].data.shape == (3, 4)
        b.close()

    run(main())
    assert rec.batches == [["0"], ["1"], ["2", "3"]]


def test_without_dynamic_batching_each_request_runs_alone() -> None:
    rec = Recorder(gated=True)

    async def main() -> None:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=False))
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        rest = [b.submit(request(i)) for i in (1, 2)]
        rec.gate.set()
        await asyncio.gather(one(first), *(one(c) for c in rest))
        b.close()

    run(main())
    assert rec.batches == [["0"], ["1"], ["2"]]


def test_max_queue_delay_waits_for_more_requests() -> None:
    rec = Recorder()
    delay_ns = 50_000_000

    async def main() -> list[InferRequest]:
        b = make(rec, BatchingPolicy(max_batch_size=8, dynamic=True, max_queue_delay_ns=delay_ns))
        reqs = [request(i) for i in range(3)]
        channels = [b.submit(r) for r in reqs]  # one loop tick: all queued before the delay ends
        await asyncio.gather(*(one(c) for c in channels))
        b.close()
        return reqs

    reqs = run(main())
    assert rec.batches == [["0", "1", "2"]]
    assert reqs[0].times.compute_start_ns - reqs[0].times.queue_start_ns >= delay_ns


def test_full_batch_does_not_wait_for_the_delay() -> None:
    rec = Recorder()

    async def main() -> None:
        b = make(rec, BatchingPolicy(max_batch_size=2, dynamic=True, max_queue_delay_ns=600 * 10**9))
        await asyncio.gather(*(one(b.submit(request(i))) for i in range(2)))
        b.close()

    run(main())
    assert rec.batches == [["0", "1"]]


def test_preferred_batch_size_is_sent_without_waiting_for_the_delay() -> None:
    rec = Recorder()

    async def main() -> InferResponse:
        policy = BatchingPolicy(
            max_batch_size=8,
            dynamic=True,
            preferred_batch_sizes=frozenset({2}),
            max_queue_delay_ns=600 * 10**9,
        )
        b = make(rec, policy)
        channels = [b.submit(request(i)) for i in range(3)]
        await asyncio.gather(one(channels[0]), one(channels[1]))
        b.close()  # the third is still waiting for a partner: shutting down rejects it
        return await one(channels[2])

    third = run(main())
    assert rec.batches == [["0", "1"]]
    assert isinstance(third.error, Unavailable) and "unloading" in str(third.error)


def test_queue_overflow_is_rejected_unavailable_with_tritons_wording() -> None:
    rec = Recorder(gated=True)
    stats = ModelStats()

    async def main() -> list[InferResponse]:
        b = make(rec, BatchingPolicy(max_batch_size=1, dynamic=True, max_queue_size=2), stats=stats)
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        queued = [b.submit(request(i)) for i in (1, 2)]
        overflow = await one(b.submit(request(3)))
        await asyncio.sleep(0)  # one loop turn: the batcher hands this turn's requests to the instances
        assert stats.snapshot().pending == 2
        rec.gate.set()
        outs = await asyncio.gather(one(first), *(one(c) for c in queued))
        b.close()
        return [*outs, overflow]

    outs = run(main())
    assert all(r.error is None for r in outs[:3])
    assert isinstance(outs[3].error, Unavailable) and str(outs[3].error) == QUEUE_FULL
    assert outs[3].error.kind is StatusKind.UNAVAILABLE
    assert stats.snapshot().pending == 0


def test_request_cancelled_while_queued_fails_cancelled_and_never_executes() -> None:
    rec = Recorder(gated=True)
    stats = ModelStats()

    async def main() -> InferResponse:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True), stats=stats)
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        victim = request(1)
        channel = b.submit(victim)
        survivor = b.submit(request(2))
        victim.cancel.cancel()
        cancelled = await one(channel)  # answered at once, while the instance is still busy
        assert not rec.gate.is_set()
        rec.gate.set()
        await asyncio.gather(one(first), one(survivor))
        b.close()
        return cancelled

    resp = run(main())
    assert isinstance(resp.error, Cancelled) and resp.error.kind is StatusKind.CANCELLED
    assert rec.batches == [["0"], ["2"]]
    assert stats.snapshot().pending == 0


def test_consumer_cancelled_while_waiting_cancels_the_request() -> None:
    rec = Recorder(gated=True)

    async def main() -> InferRequest:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True))
        b.submit(request(0))
        await wait_for_event(rec.entered)
        req = request(1)
        task = asyncio.ensure_future(one(b.submit(req)))
        await asyncio.sleep(0)  # let the consumer start waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rec.gate.set()
        b.close()
        return req

    req = run(main())
    assert req.cancel.is_cancelled()
    assert rec.batches == [["0"]]


def test_instances_execute_in_parallel() -> None:
    both_inside = threading.Barrier(2, timeout=WAIT_S)
    seen: list[int] = []

    def execute(batch: Batch) -> list[InferResponse | None]:
        seen.append(batch.instance)
        both_inside.wait()  # breaks (and fails the batch) unless two instances run at once
        return [InferResponse("m", "1", r.id) for r in batch.requests]

    async def main() -> list[InferResponse]:
        b = make(execute, BatchingPolicy(), instances=2)
        outs = await asyncio.gather(one(b.submit(request(0))), one(b.submit(request(1))))
        b.close()
        return outs

    outs = run(main())
    assert all(r.error is None for r in outs)
    assert sorted(seen) == [0, 1]


def test_execute_failure_fails_only_that_batch() -> None:
    rec = Recorder(fail_ids=["bad"])

    async def main() -> tuple[InferResponse, InferResponse]:
        b = make(rec, BatchingPolicy(max_batch_size=4, dynamic=True))
        bad = request(0)
        bad.id = "bad"
        failed = await one(b.submit(bad))
        ok = await one(b.submit(request(1)))
        b.close()
        return failed, ok

    failed, ok = run(main())
    assert isinstance(failed.error, BackendError) and "RuntimeError: boom" in str(failed.error)
    assert ok.error is None


def test_wrong_number_of_responses_is_a_clear_error() -> None:
    async def main() -> InferResponse:
        b = make(lambda batch: [], BatchingPolicy())
        resp = await one(b.submit(request(0)))
        b.close()
        return resp

    resp = run(main())
    assert isinstance(resp.error, BackendError) and "0 responses for a batch of 1" in str(resp.error)


def test_requests_with_different_shapes_are_not_batched_together() -> None:
    rec = Recorder(gated=True)

    async def main() -> None:
        b = make(rec, BatchingPolicy(max_batch_size=8, dynamic=True, shape_sensitive=True))
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        rest = [b.submit(request(1, cols=4)), b.submit(request(2, cols=4)), b.submit(request(3, cols=5))]
        rec.gate.set()
        await asyncio.gather(one(first), *(one(c) for c in rest))
        b.close()

    run(main())
    assert rec.batches == [["0"], ["1", "2"], ["3"]]


def test_queue_timeout_rejects_requests_that_waited_too_long() -> None:
    rec = Recorder(gated=True)

    async def main() -> InferResponse:
        policy = BatchingPolicy(max_batch_size=4, dynamic=True, allow_timeout_override=True)
        b = make(rec, policy)
        first = b.submit(request(0))
        await wait_for_event(rec.entered)
        late = request(1)
        late.parameters = {"timeout": 1}  # microseconds: long gone when the instance frees up
        channel = b.submit(late)
        await asyncio.sleep(0.001)
        rec.gate.set()
        await one(first)
        resp = await one(channel)
        b.close()
        return resp

    resp = run(main())
    assert isinstance(resp.error, Unavailable) and "timeout" in str(resp.error)
    assert rec.batches == [["0"]]


def test_oversized_request_and_submit_after_close_are_rejected() -> None:
    async def main() -> tuple[InferResponse, InferResponse]:
        b = make(Recorder(), BatchingPolicy(max_batch_size=2, dynamic=True))
        big = await one(b.submit(request(0, rows=3)))
        b.close()
        late = await one(b.submit(request(1)))
        return big, late

    big, late = run(main())
    assert big.error is not None and big.error.kind is StatusKind.INVALID_ARG and "3" in str(big.error)
    assert isinstance(late.error, Unavailable)


def test_execute_failing_after_it_answered_logs_the_late_error(caplog: pytest.LogCaptureFixture) -> None:
    """A model that sent its (final) response through the channel and then raised: the client keeps the
    answer, and the error that can no longer reach it is logged with model, version and request id."""

    def answer_then_fail(batch: Batch) -> None:
        for r, channel in zip(batch.requests, batch.channels, strict=True):
            channel.push(echo(r))
        raise RuntimeError("failed after answering")

    async def main() -> InferResponse:
        b = make(answer_then_fail, BatchingPolicy())
        resp = await one(b.submit(request(7)))
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not late_errors() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)  # the error follows on a later loop wake-up
        b.close()
        return resp

    def late_errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    with caplog.at_level(logging.WARNING, logger="server.scheduling.response_channel"):
        resp = run(main())
    assert resp.error is None
    messages = late_errors()
    assert len(messages) == 1, messages
    assert "model 'm' version 1: request '7' was already answered" in messages[0]
    assert "failed after answering" in messages[0]


def test_a_dead_instance_thread_makes_the_batcher_not_alive(caplog: pytest.LogCaptureFixture) -> None:
    """A bug that kills an instance thread (not a failing execute, which fails only its batch) must show
    as a not-ready model instead of requests queueing forever."""
    batcher = make(Recorder(), BatchingPolicy(max_batch_size=4, dynamic=True))
    assert batcher.alive

    def broken_run(*_: object, **__: object) -> list[Any]:
        raise AssertionError("internal bug")

    batcher._run = broken_run  # type: ignore[method-assign]

    async def main() -> None:
        batcher.submit(request(1))
        await asyncio.sleep(0)  # the submit's flush hands the request to the instance thread

    with caplog.at_level(logging.ERROR):
        run(main())
        thread = batcher._threads[0]
        thread.join(WAIT_S)
    assert not thread.is_alive() and not batcher.alive
    assert any("died" in r.getMessage() for r in caplog.records)
    batcher.close()
