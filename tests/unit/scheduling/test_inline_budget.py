"""Inline execution yields the event loop: a burst runs for about INLINE_BUDGET_NS per loop turn, the rest
on the following turns, in order and with the usual batching."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from server.errors import Unavailable
from server.scheduling import inline_execution
from server.scheduling.batch import Batch
from server.scheduling.batch_plan import BatchingPolicy
from server.scheduling.dynamic_batcher import DynamicBatcher
from server.scheduling.inline_gate import InlineGate
from server.stats import ModelStats
from server.types import DataType, InferRequest, InferResponse, Tensor

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


class TurnCounter:
    """Counts event-loop turns: a callback that reschedules itself runs once per turn."""

    def __init__(self) -> None:
        self.turn = 0
        self._stopped = False

    def start(self) -> None:
        asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._stopped = True

    def _tick(self) -> None:
        if not self._stopped:
            self.turn += 1
            asyncio.get_running_loop().call_soon(self._tick)


class Recorder:
    """Echoes X as Y; records each batch's request ids and loop turn, and advances the clock."""

    def __init__(self, turns: TurnCounter, clock: FakeClock, cost_ns: int) -> None:
        self.turns = turns
        self.clock = clock
        self.cost_ns = cost_ns
        self.batches: list[tuple[int, list[str]]] = []

    def __call__(self, batch: Batch) -> list[InferResponse | None]:
        self.batches.append((self.turns.turn, [r.id for r in batch.requests]))
        self.clock.now_ns += self.cost_ns
        return [echo(r) for r in batch.requests]


def echo(r: InferRequest) -> InferResponse:
    y = Tensor("Y", DataType.FP32, r.inputs["X"].data)
    return InferResponse(r.model_name, r.model_version, r.id, [y])


def request(i: int, batched: bool) -> InferRequest:
    shape = (1, 4) if batched else (4,)
    return InferRequest("m", "1", str(i), {"X": Tensor("X", DataType.FP32, np.full(shape, i, np.float32))})


async def burst(batcher: DynamicBatcher, count: int, batched: bool) -> list[InferResponse]:
    async def one(i: int) -> InferResponse:
        responses = [r async for r in batcher.submit(request(i, batched))]
        assert len(responses) == 1
        return responses[0]

    return await asyncio.gather(*(one(i) for i in range(count)))


def run_burst(
    monkeypatch: pytest.MonkeyPatch, policy: BatchingPolicy, count: int, cost_ns: int, budget_ns: int
) -> tuple[Recorder, list[InferResponse]]:
    clock, turns = FakeClock(), TurnCounter()
    monkeypatch.setattr(inline_execution, "budget_clock", clock)
    monkeypatch.setattr(inline_execution, "INLINE_BUDGET_NS", budget_ns)
    recorder = Recorder(turns, clock, cost_ns)
    batcher = DynamicBatcher("m", policy, ["m_0"], recorder, ModelStats(), InlineGate("m", warmup=0))
    batcher.start()

    async def main() -> list[InferResponse]:
        turns.start()
        try:
            return await burst(batcher, count, policy.max_batch_size > 0)
        finally:
            turns.stop()

    try:
        responses = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        batcher.close()
    return recorder, responses


def test_a_burst_runs_about_the_budget_per_loop_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, responses = run_burst(monkeypatch, BatchingPolicy(), count=7, cost_ns=MS, budget_ns=2 * MS)
    assert [r.error for r in responses] == [None] * 7
    assert [r.id for r in responses] == [str(i) for i in range(7)]
    assert [ids for _, ids in recorder.batches] == [[str(i)] for i in range(7)]  # in order, one each
    per_turn = Counter(turn for turn, _ in recorder.batches)
    assert sorted(per_turn.values(), reverse=True) == [2, 2, 2, 1]  # 1 ms each, 2 ms a turn
    assert len(per_turn) == 4


def test_an_execute_over_the_budget_still_runs_one_batch_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = BatchingPolicy(max_batch_size=4, dynamic=True)
    recorder, responses = run_burst(monkeypatch, policy, count=10, cost_ns=5 * MS, budget_ns=2 * MS)
    assert [r.error for r in responses] == [None] * 10
    # the first request of the turn runs inside submit; the rest batch by the usual rules, a batch a turn
    assert [len(ids) for _, ids in recorder.batches] == [1, 4, 4, 1]
    assert [i for _, ids in recorder.batches for i in ids] == [str(i) for i in range(10)]
    assert len({turn for turn, _ in recorder.batches}) == 4


def test_requests_arriving_mid_burst_run_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, turns = FakeClock(), TurnCounter()
    monkeypatch.setattr(inline_execution, "budget_clock", clock)
    monkeypatch.setattr(inline_execution, "INLINE_BUDGET_NS", 0)
    recorder = Recorder(turns, clock, 0)
    gate = InlineGate("m", warmup=0)
    batcher = DynamicBatcher("m", BatchingPolicy(), ["m_0"], recorder, ModelStats(), gate)
    batcher.start()

    async def main() -> None:
        turns.start()
        first = asyncio.ensure_future(burst(batcher, 3, batched=False))
        while not recorder.batches:
            await asyncio.sleep(0)
        late = [r async for r in batcher.submit(request(9, batched=False))]
        assert late[0].error is None
        await first
        turns.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        batcher.close()
    assert [ids[0] for _, ids in recorder.batches] == ["0", "1", "2", "9"]


def test_close_between_turns_fails_the_rest_of_the_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, turns = FakeClock(), TurnCounter()
    monkeypatch.setattr(inline_execution, "budget_clock", clock)
    monkeypatch.setattr(inline_execution, "INLINE_BUDGET_NS", 0)
    recorder = Recorder(turns, clock, 0)
    stats = ModelStats()
    batcher = DynamicBatcher("m", BatchingPolicy(), ["m_0"], recorder, stats, InlineGate("m", warmup=0))
    batcher.start()

    async def main() -> list[InferResponse]:
        pending = asyncio.ensure_future(burst(batcher, 4, batched=False))
        while not recorder.batches:
            await asyncio.sleep(0)
        batcher.close(timeout_s=5)  # on the loop, between two inline turns: must not wait for them
        return await pending

    responses = asyncio.run(asyncio.wait_for(main(), 30))
    assert responses[0].error is None
    assert all(isinstance(r.error, Unavailable) for r in responses[1:])
    assert len(recorder.batches) == 1
    assert stats.snapshot().pending == 0
