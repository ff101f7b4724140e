"""DynamicBatcher.run_now: the unary fast path that executes an idle, cheap model's request at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np

from server.errors import BackendError
from server.scheduling.batch import Batch
from server.scheduling.batch_plan import BatchingPolicy
from server.scheduling.dynamic_batcher import DynamicBatcher
from server.scheduling.inline_gate import InlineGate
from server.scheduling.response_channel import ResponseChannel
from server.stats import ModelStats
from server.types import DataType, InferRequest, InferResponse, Tensor

WAIT_S = 10.0
POLICY = BatchingPolicy(max_batch_size=4, dynamic=True)


def request(i: int, rows: int = 1) -> InferRequest:
    x = Tensor("X", DataType.FP32, np.full((rows, 2), i, np.float32))
    return InferRequest("m", "1", str(i), {"X": x})


def echo(r: InferRequest) -> InferResponse:
    y = Tensor("Y", DataType.FP32, r.inputs["X"].data)
    return InferResponse(r.model_name, r.model_version, r.id, [y])


class Model:
    """Echoes X as Y; records where each batch ran; `hold` keeps an execute waiting until released."""

    def __init__(self, answer: Callable[[Batch], list[InferResponse | None]] | None = None) -> None:
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._answer = answer

    def __call__(self, batch: Batch) -> list[InferResponse | None]:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(WAIT_S)
        if self._answer is not None:
            return self._answer(batch)
        return [echo(r) for r in batch.requests]


def batcher(model: Model, gate: InlineGate | None, stats: ModelStats | None = None) -> DynamicBatcher:
    b = DynamicBatcher("m", POLICY, ["m_0"], model, stats or ModelStats(), gate)
    b.start()
    return b


def answer_now(b: DynamicBatcher, r: InferRequest) -> InferResponse | ResponseChannel | None:
    """`run_now(r)` on a fresh event loop; the batcher is closed afterwards."""

    async def main() -> InferResponse | ResponseChannel | None:
        return b.run_now(r)

    try:
        return asyncio.run(main())
    finally:
        b.close()


def test_an_idle_cheap_model_answers_at_once_on_the_loop() -> None:
    model, stats = Model(), ModelStats()
    answer = answer_now(batcher(model, InlineGate("m", warmup=0), stats), request(7))
    assert isinstance(answer, InferResponse) and answer.error is None and answer.id == "7"
    assert answer.outputs[0].data.tolist() == [[7.0, 7.0]]
    assert model.threads == [threading.main_thread().name]  # on the loop, not the instance thread
    snap = stats.snapshot()
    assert snap.execution_count == 1 and snap.batches[1].compute_infer.count == 1 and snap.pending == 0


def test_nothing_runs_now_without_an_open_gate() -> None:
    for gate in (None, InlineGate("m", warmup=16)):
        model = Model()
        assert answer_now(batcher(model, gate), request(1)) is None
        assert model.threads == []


def test_a_request_never_overtakes_one_submitted_before_it() -> None:
    model = Model()
    b = batcher(model, InlineGate("m", warmup=0))

    async def main() -> tuple[InferResponse | ResponseChannel | None, list[InferResponse]]:
        first = b.submit(request(1))  # the first of this loop turn runs at once
        second = b.submit(request(2))  # the next waits for the end of the turn
        now = b.run_now(request(3))
        return now, [r async for r in first] + [r async for r in second]

    try:
        now, answered = asyncio.run(main())
    finally:
        b.close()
    assert now is None and [r.id for r in answered] == ["1", "2"]


def test_a_busy_instance_leaves_the_request_to_submit() -> None:
    model = Model()
    model.release.clear()
    gate = InlineGate("m", warmup=1)
    b = batcher(model, gate)

    async def main() -> tuple[InferResponse | ResponseChannel | None, InferResponse | ResponseChannel | None]:
        held = b.submit(request(1))  # warming up: runs on the instance thread, where it waits
        assert await asyncio.to_thread(model.entered.wait, WAIT_S)
        gate.record(1_000, 1_000, 1, inline=False)  # the gate opens while the instance is busy
        busy = b.run_now(request(2))
        model.release.set()
        assert [r.id async for r in held] == ["1"]
        return busy, b.run_now(request(3))

    try:
        busy, idle = asyncio.run(main())
    finally:
        b.close()
    assert busy is None
    assert isinstance(idle, InferResponse) and idle.id == "3"


def test_an_oversized_request_is_left_to_submit_which_words_the_refusal() -> None:
    model = Model()
    b = batcher(model, InlineGate("m", warmup=0))

    async def main() -> tuple[InferResponse | ResponseChannel | None, list[InferResponse]]:
        big = request(1, rows=POLICY.max_batch_size + 1)
        return b.run_now(big), [r async for r in b.submit(big)]

    try:
        now, refused = asyncio.run(main())
    finally:
        b.close()
    assert now is None and model.threads == []
    assert refused[0].error is not None and "exceeds the max_batch_size 4" in str(refused[0].error)


def test_a_model_that_answers_through_the_channel_hands_back_the_channel() -> None:
    def through_channel(batch: Batch) -> list[InferResponse | None]:
        for i, r in enumerate(batch.requests):
            batch.channel(i).push(echo(r))
        return [None] * len(batch.requests)

    b = batcher(Model(through_channel), InlineGate("m", warmup=0))

    async def main() -> list[InferResponse]:
        answer = b.run_now(request(5))
        assert isinstance(answer, ResponseChannel)
        return [r async for r in answer]

    try:
        responses = asyncio.run(asyncio.wait_for(main(), WAIT_S))
    finally:
        b.close()
    assert [r.id for r in responses] == ["5"] and responses[0].final


def test_a_failing_execute_answers_with_its_error() -> None:
    def boom(batch: Batch) -> list[InferResponse | None]:
        raise RuntimeError("boom")

    answer = answer_now(batcher(Model(boom), InlineGate("m", warmup=0)), request(1))
    assert isinstance(answer, InferResponse) and isinstance(answer.error, BackendError)
    assert "RuntimeError: boom" in str(answer.error)
