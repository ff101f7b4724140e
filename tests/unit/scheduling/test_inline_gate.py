"""InlineGate and inline execution: cheap single-instance models execute on the loop, with a safety valve."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from server.errors import ConfigError
from server.repository.model_config import ModelConfig
from server.scheduling.batch import Batch
from server.scheduling.batch_plan import BatchingPolicy
from server.scheduling.dynamic_batcher import DynamicBatcher
from server.scheduling.inline_gate import INLINE_PARAMETER, InlineGate, inline_gate, inline_requested
from server.stats import ModelStats
from server.types import DataType, InferRequest, InferResponse, Tensor

US = 1000
MS = 1_000_000


def config(**extra: object) -> ModelConfig:
    return ModelConfig.from_dict(
        {
            "name": "m",
            "backend": "python",
            "max_batch_size": 8,
            "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}],
            "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [4]}],
            **extra,
        }
    )


def test_gate_opens_only_after_warmup_of_cheap_executes() -> None:
    gate = InlineGate("m", warmup=4, ewma_limit_ns=100 * US)
    for _ in range(3):
        gate.record(20 * US, 20 * US, 1, inline=False)
        assert not gate.open
    gate.record(20 * US, 20 * US, 1, inline=False)
    assert gate.open


def test_gate_stays_shut_for_an_expensive_model() -> None:
    gate = InlineGate("m", warmup=2, ewma_limit_ns=100 * US)
    for _ in range(10):
        gate.record(500 * US, 500 * US, 1, inline=False)
    assert not gate.open and not gate.closed  # shut for now, not for good: it may get cheaper


def test_one_slow_execute_on_the_loop_closes_the_gate_for_good() -> None:
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US, valve_ns=2 * MS)
    gate.record(10 * US, 10 * US, 1, inline=False)
    assert gate.open
    gate.record(10 * US, 5 * MS, 1, inline=True)
    assert gate.closed and not gate.open
    for _ in range(100):
        gate.record(10 * US, 10 * US, 1, inline=False)
    assert not gate.open


def test_slow_worker_wall_time_alone_does_not_close_the_gate() -> None:
    # a worker's wall time includes waiting for the GIL: only its CPU time counts
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US, valve_ns=2 * MS)
    gate.record(10 * US, 50 * MS, 1, inline=False)
    assert gate.open and not gate.closed


def test_a_preempted_execute_does_not_work_the_valve() -> None:
    # the OS took the core away: a busy machine, not a slow model
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US, valve_ns=2 * MS)
    gate.record(10 * US, 10 * US, 1, inline=False)
    gate.record(10 * US, 30 * MS, 1, inline=True, preempted=True)
    assert not gate.closed


def test_an_uncounted_slow_execute_only_makes_the_gate_count_the_next_one() -> None:
    # preemptions are not counted for every execute (two system calls): a slow execute nobody counted
    # closes nothing; the next execute is counted, and a counted slow one closes the gate
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US, valve_ns=2 * MS)
    gate.record(10 * US, 10 * US, 1, inline=False)
    gate.record(10 * US, 30 * MS, 1, inline=True, preempted=None)
    assert gate.open
    assert gate.begin(inline=True)[1] >= 0  # the next execute on the loop counts preemptions
    gate.record(10 * US, 30 * MS, 1, inline=True, preempted=False)
    assert gate.closed


def test_a_fast_counted_execute_clears_the_suspicion() -> None:
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US, valve_ns=2 * MS)
    gate.record(10 * US, 10 * US, 1, inline=False)
    assert gate.begin(inline=True)[1] == -1  # cheap executes on the loop count no preemptions
    gate.record(10 * US, 30 * MS, 1, inline=True, preempted=None)
    gate.record(10 * US, 30 * MS, 1, inline=True, preempted=True)  # preempted: still suspicious
    assert gate.begin(inline=True)[1] >= 0
    gate.record(10 * US, 10 * US, 1, inline=True, preempted=False)
    assert gate.begin(inline=True)[1] == -1 and gate.open


def test_cost_is_per_request_so_cheap_batches_stay_inline() -> None:
    gate = InlineGate("m", warmup=1, ewma_limit_ns=100 * US)
    gate.record(400 * US, 400 * US, 8, inline=False)  # 50 us a request
    assert gate.open
    gate.record(5 * MS, 5 * MS, 1, inline=False)  # one request alone costing 5 ms
    assert not gate.open


def test_executes_on_the_loop_slow_on_average_close_the_gate() -> None:
    gate = InlineGate("m", warmup=1, ewma_limit_ns=10 * MS, valve_ns=50 * MS, wall_limit_ns=1 * MS)
    gate.record(10 * US, 10 * US, 1, inline=False)
    for _ in range(200):
        if gate.closed:
            break
        gate.record(3 * MS, 3 * MS, 1, inline=True)
    assert gate.closed


def test_inline_parameter_values() -> None:
    assert inline_requested({}, "m")
    assert inline_requested({INLINE_PARAMETER: "auto"}, "m")
    assert not inline_requested({INLINE_PARAMETER: "false"}, "m")
    with pytest.raises(ConfigError, match=r"inline_execution of model 'm'.*'sometimes'"):
        inline_requested({INLINE_PARAMETER: "sometimes"}, "m")


def test_which_models_get_a_gate() -> None:
    assert inline_gate(config(), instances=1) is not None
    assert inline_gate(config(), instances=2) is None
    assert inline_gate(config(), instances=1, can_inline=False) is None
    assert inline_gate(config(parameters={INLINE_PARAMETER: {"string_value": "false"}}), instances=1) is None
    delayed = config(dynamic_batching={"max_queue_delay_microseconds": 100})
    assert inline_gate(delayed, instances=1) is None


class ThreadRecorder:
    """Echoes X as Y and records which thread ran each batch; ids in `slow` sleep `slow_s` first."""

    def __init__(self, slow: set[str] | None = None, slow_s: float = 0.0) -> None:
        self.threads: list[int] = []
        self.slow = slow or set()
        self.slow_s = slow_s
        self.batch_sizes: list[int] = []

    def __call__(self, batch: Batch) -> list[InferResponse | None]:
        self.threads.append(threading.get_ident())
        self.batch_sizes.append(len(batch.requests))
        if self.slow & {r.id for r in batch.requests}:
            time.sleep(self.slow_s)  # stands in for a model that blocks
        return [
            InferResponse(
                r.model_name, r.model_version, r.id, [Tensor("Y", DataType.FP32, r.inputs["X"].data)]
            )
            for r in batch.requests
        ]


def request(i: int) -> InferRequest:
    return InferRequest("m", "1", str(i), {"X": Tensor("X", DataType.FP32, np.full((1, 4), i, np.float32))})


async def infer(batcher: DynamicBatcher, i: int) -> InferResponse:
    responses = [r async for r in batcher.submit(request(i))]
    assert len(responses) == 1 and responses[0].error is None
    assert responses[0].id == str(i) and responses[0].outputs[0].data[0, 0] == i
    return responses[0]


def test_cheap_model_runs_on_the_loop_until_a_slow_execute_sends_it_back_for_good() -> None:
    slow = {str(i) for i in range(100, 120)}
    recorder = ThreadRecorder(slow=slow, slow_s=0.02)
    gate = InlineGate("m", warmup=2, ewma_limit_ns=5 * MS, valve_ns=10 * MS)
    stats = ModelStats()
    policy = BatchingPolicy(max_batch_size=8, dynamic=True)
    batcher = DynamicBatcher("m", policy, ["m_0"], recorder, stats, gate)
    batcher.start()
    worker = batcher._threads[0].ident

    async def main() -> int:
        loop_thread = threading.get_ident()
        for i in range(5):
            await infer(batcher, i)
        assert recorder.threads[:2] == [worker, worker]  # warm-up on the worker thread
        assert recorder.threads[2:] == [loop_thread] * 3  # then on the loop
        # A slow execute on the loop closes the gate (one preempted by the OS would not count: retry).
        for i in range(100, 120):
            await infer(batcher, i)
            assert recorder.threads[-1] == loop_thread
            if gate.closed:
                break
        assert gate.closed
        for i in range(6, 9):
            await infer(batcher, i)
        return loop_thread

    asyncio.run(asyncio.wait_for(main(), 30))
    assert recorder.threads[-3:] == [worker] * 3  # for good
    assert stats.snapshot().execution_count == len(recorder.threads)
    batcher.close()


def open_inline_batcher() -> tuple[ThreadRecorder, DynamicBatcher]:
    """A started batcher (max_batch_size 4) whose gate is open from the first request."""
    recorder = ThreadRecorder()
    policy = BatchingPolicy(max_batch_size=4, dynamic=True)
    batcher = DynamicBatcher("m", policy, ["m_0"], recorder, ModelStats(), InlineGate("m", warmup=0))
    batcher.start()
    return recorder, batcher


def test_requests_arriving_together_run_inline_in_order_the_first_at_once() -> None:
    recorder, batcher = open_inline_batcher()

    async def main() -> None:
        responses = await asyncio.gather(*(infer(batcher, i) for i in range(6)))
        assert [r.id for r in responses] == [str(i) for i in range(6)]
        assert recorder.threads == [threading.get_ident()] * 3  # 1 at once, then 4 + 1 at the turn's end
        assert recorder.batch_sizes == [1, 4, 1]

    asyncio.run(asyncio.wait_for(main(), 30))
    batcher.close()


def test_the_first_request_of_a_loop_turn_executes_inside_submit_the_next_at_the_turns_end() -> None:
    recorder, batcher = open_inline_batcher()

    async def main() -> None:
        first = batcher.submit(request(1))
        assert recorder.batch_sizes == [1]  # already executed: its response waits in the channel
        second = batcher.submit(request(2))
        assert recorder.batch_sizes == [1]  # the same turn: it waits for the turn's end
        assert [r.id async for r in second] == ["2"]
        assert [r.id async for r in first] == ["1"]
        assert recorder.batch_sizes == [1, 1]
        # the turn ended while `second` waited: the next request runs at once again
        third = batcher.submit(request(3))
        assert recorder.batch_sizes == [1, 1, 1]
        assert [r.id async for r in third] == ["3"]

    asyncio.run(asyncio.wait_for(main(), 30))
    batcher.close()
