"""EngineLoop: the engine thread, output delivery, failure isolation, crash handling, shutdown."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import FinishReason, RequestOutput
from server.engine.runner import BatchItem
from server.engine.sampling_params import SamplingParams
from server.errors import ConfigError, InvalidInput, ModelNotReady, ResourceExhausted
from tests.support.fake_runner import FakeRunner, reference_generate
from tests.unit.engine.factories import VOCAB, make_prompt

WAIT_S = 10.0


class Collector:
    """on_output target: records outputs per request and signals each request's final output."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[RequestOutput]] = {}
        self.threads: set[str] = set()
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def callback(self, request_id: str) -> Callable[[RequestOutput], None]:
        self._done[request_id] = threading.Event()

        def on_output(out: RequestOutput) -> None:
            with self._lock:
                self.outputs.setdefault(out.request_id, []).append(out)
                self.threads.add(threading.current_thread().name)
            if out.finished:
                self._done[out.request_id].set()

        return on_output

    def wait(self, *request_ids: str) -> None:
        for rid in request_ids:
            assert self._done[rid].wait(WAIT_S), f"{rid} got no final output"

    def tokens(self, request_id: str) -> list[int]:
        return [t for o in self.outputs[request_id] for t in o.new_token_ids]

    def final(self, request_id: str) -> RequestOutput:
        outs = self.outputs[request_id]
        assert [o.finished for o in outs].count(True) == 1 and outs[-1].finished
        return outs[-1]


class Gate:
    """A before_execute hook that holds the engine thread inside a step until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def __call__(self, items: Sequence[BatchItem]) -> None:
        self.entered.set()
        assert self.open.wait(WAIT_S), "gate never opened"


def make_loop(runner: FakeRunner | None = None, **overrides: object) -> tuple[EngineLoop, FakeRunner]:
    runner = runner or FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    limits: dict[str, object] = {"max_num_seqs": 8, "max_num_batched_tokens": 64, **overrides}
    loop = EngineLoop(runner, EngineConfig.from_runner(runner, **limits))
    loop.start()
    return loop, runner


@pytest.fixture
def collector() -> Collector:
    return Collector()


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_requests_stream_one_output_per_step_on_the_engine_thread(collector: Collector) -> None:
    loop, runner = make_loop()
    prompts = {f"r{i}": make_prompt(5 + 7 * i, seed=i) for i in range(4)}
    for rid, prompt in prompts.items():
        loop.submit(rid, prompt, SamplingParams(max_tokens=6), collector.callback(rid))
    collector.wait(*prompts)
    for rid, prompt in prompts.items():
        assert collector.tokens(rid) == reference_generate(prompt, 6, VOCAB)
        assert [len(o.new_token_ids) for o in collector.outputs[rid]] == [1] * 6
        assert collector.final(rid).finish_reason is FinishReason.LENGTH
    assert collector.threads == {"hangar-engine"} == runner.thread_names
    assert sorted(runner.released) == sorted(prompts)
    wait_for(lambda: loop.stats().kv_blocks_used == 0, "blocks to be freed in the stats")
    stats = loop.stats()
    assert stats.generation_tokens_total == 24 and stats.num_waiting == 0
    loop.shutdown()
    assert not loop.alive and loop.error is None


def test_idle_engine_thread_parks_on_its_condition(collector: Collector) -> None:
    loop, _ = make_loop()
    loop.submit("r", [1, 2, 3], SamplingParams(max_tokens=2), collector.callback("r"))
    collector.wait("r")
    thread = next(t for t in threading.enumerate() if t.name == "hangar-engine")
    assert thread.ident is not None

    def parked() -> bool:
        frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
        return (
            frame is not None and frame.f_code.co_name == "wait" and "threading" in frame.f_code.co_filename
        )

    wait_for(parked, "the engine thread to wait on its condition")
    steps = loop.stats().step_counter
    assert parked() and loop.stats().step_counter == steps
    loop.shutdown()


def test_sampling_failure_fails_only_that_request(collector: Collector) -> None:
    runner = FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    runner.fail_sampling["bad"] = 1
    loop, _ = make_loop(runner)
    for rid in ("good", "bad"):
        loop.submit(rid, make_prompt(9), SamplingParams(max_tokens=4), collector.callback(rid))
    collector.wait("good", "bad")
    bad = collector.final("bad")
    assert bad.finish_reason is FinishReason.ERROR and "NaN" in (bad.error or "")
    assert collector.final("good").finish_reason is FinishReason.LENGTH
    assert collector.tokens("good") == reference_generate(make_prompt(9), 4, VOCAB)
    assert loop.alive
    loop.shutdown()


def test_runner_crash_fails_every_request_marks_the_loop_dead_and_refuses_submits(
    collector: Collector,
) -> None:
    runner = FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    runner.crash_at_step = 2
    loop, _ = make_loop(runner, max_num_seqs=1, max_num_batched_tokens=16)
    for rid in ("a", "b", "c"):
        loop.submit(rid, make_prompt(4), SamplingParams(max_tokens=20), collector.callback(rid))
    collector.wait("a", "b", "c")
    for rid in ("a", "b", "c"):
        final = collector.final(rid)
        assert final.finish_reason is FinishReason.ERROR
        assert final.error is not None and "simulated device failure" in final.error
    wait_for(lambda: not loop.alive, "the loop to be marked dead")
    assert loop.error is not None and "RuntimeError" in loop.error
    with pytest.raises(ModelNotReady, match="simulated device failure"):
        loop.submit("d", [1], SamplingParams(), collector.callback("d"))
    loop.shutdown()


def test_abort_and_finish_end_running_requests_at_the_next_step(collector: Collector) -> None:
    gate = Gate()
    runner = FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    runner.before_execute = gate
    loop, _ = make_loop(runner)
    for rid in ("cancel", "stop", "keep"):
        loop.submit(rid, make_prompt(12), SamplingParams(max_tokens=30), collector.callback(rid))
    assert gate.entered.wait(WAIT_S)
    loop.abort("cancel")
    loop.finish("stop")
    loop.abort("no-such-request")
    gate.open.set()
    collector.wait("cancel", "stop")
    assert collector.final("cancel").finish_reason is FinishReason.ABORT
    assert collector.final("stop").finish_reason is FinishReason.STOP
    assert {"cancel", "stop"} <= set(runner.released)
    collector.wait("keep")
    assert collector.final("keep").num_output_tokens == 30
    loop.shutdown()


def test_duplicate_ids_are_refused_while_in_flight_and_reusable_after(collector: Collector) -> None:
    gate = Gate()
    runner = FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    runner.before_execute = gate
    loop, _ = make_loop(runner)
    loop.submit("x", [1, 2], SamplingParams(max_tokens=2), collector.callback("x"))
    with pytest.raises(InvalidInput, match="'x' is already in flight"):
        loop.submit("x", [1, 2], SamplingParams(max_tokens=2), collector.callback("x"))
    gate.open.set()
    collector.wait("x")
    again = Collector()
    loop.submit("x", [1, 2], SamplingParams(max_tokens=2), again.callback("x"))
    again.wait("x")
    loop.shutdown()


def test_submit_validates_in_the_callers_thread(collector: Collector) -> None:
    loop, _ = make_loop(FakeRunner(num_blocks=16, block_size=8, max_model_len=256, vocab_size=VOCAB))
    with pytest.raises(InvalidInput, match="empty"):
        loop.submit("e", [], SamplingParams(), collector.callback("e"))
    with pytest.raises(InvalidInput, match="token id 5000"):
        loop.submit("v", [1, 5000], SamplingParams(), collector.callback("v"))
    with pytest.raises(ResourceExhausted, match="needs 20 KV blocks of 8 tokens, but the whole pool has 16"):
        loop.submit("big", [1] * 150, SamplingParams(max_tokens=6), collector.callback("big"))
    loop.shutdown()
    assert collector.outputs == {}


def test_shutdown_aborts_in_flight_requests_joins_and_refuses_more(collector: Collector) -> None:
    gate = Gate()
    runner = FakeRunner(num_blocks=32, block_size=8, max_model_len=256, vocab_size=VOCAB)
    runner.before_execute = gate
    loop, _ = make_loop(runner)
    for rid in ("a", "b"):
        loop.submit(rid, make_prompt(6), SamplingParams(max_tokens=50), collector.callback(rid))
    assert gate.entered.wait(WAIT_S)
    gate.open.set()
    loop.shutdown(timeout_s=WAIT_S)
    for rid in ("a", "b"):
        final = collector.final(rid)
        assert final.finish_reason is FinishReason.ABORT and "shut down" in (final.error or "")
    assert not any(t.name == "hangar-engine" for t in threading.enumerate())
    assert not loop.alive and loop.error is None
    with pytest.raises(ModelNotReady, match="has shut down"):
        loop.submit("c", [1], SamplingParams(), collector.callback("c"))
    loop.shutdown()  # idempotent


def test_a_raising_consumer_loses_only_its_request(collector: Collector) -> None:
    loop, runner = make_loop()

    def broken(out: RequestOutput) -> None:
        raise ValueError("consumer bug")

    loop.submit("broken", make_prompt(5), SamplingParams(max_tokens=20), broken)
    loop.submit("fine", make_prompt(5, seed=3), SamplingParams(max_tokens=20), collector.callback("fine"))
    collector.wait("fine")
    wait_for(lambda: "broken" in runner.released, "the broken request to be released")
    assert collector.final("fine").num_output_tokens == 20 and loop.alive
    loop.shutdown()


def test_not_started_and_mismatched_config_are_refused(collector: Collector) -> None:
    runner = FakeRunner(num_blocks=32, block_size=8, vocab_size=VOCAB)
    loop = EngineLoop(runner, EngineConfig.from_runner(runner))
    with pytest.raises(ModelNotReady, match="not been started"):
        loop.submit("a", [1], SamplingParams(), collector.callback("a"))
    loop.shutdown()
    with pytest.raises(ConfigError, match="block_size 16 != the runner's 8"):
        EngineLoop(runner, EngineConfig(num_blocks=8, block_size=16, max_model_len=64))
    with pytest.raises(ConfigError, match="num_blocks 64 > the runner's pool of 32"):
        EngineLoop(runner, EngineConfig(num_blocks=64, block_size=8, max_model_len=64))
