"""LLMBackend's request flow over a scripted engine: streaming, cancel, stop by id, stop strings, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from server.backends.base import ModelVersionSpec
from server.backends.llm.backend import DeltaSink, LLMBackend
from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.translation import GenerationRequest, ModelLimits
from server.errors import Cancelled, InvalidInput, ModelNotReady, ResourceExhausted
from server.repository.model_config import ModelConfig
from server.types import InferRequest, InferResponse
from tests.support.llm_requests import llm_request, output, text_of


class ScriptedBackend(LLMBackend):
    """An engine thread per request emitting `script` ids one step at a time; aborts end it with CANCELLED."""

    def __init__(self, tokenizer: TextTokenizer, script: list[int]) -> None:
        config = ModelConfig(name="llm", backend="scripted", decoupled=True)
        super().__init__(ModelVersionSpec("llm", 1, config, Path("."), Path("1")))
        self._script = script
        self._tok = tokenizer
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.gate: Callable[[int], None] = lambda step: None
        self._stop: dict[str, threading.Event] = {}

    @classmethod
    def check_parameters(cls, config: ModelConfig) -> None:
        return None

    def load(self) -> None:
        self.tokenizer = self._tok
        self.limits = ModelLimits(vocab_size=self._tok.vocab_size, max_model_len=4096, decoupled=True)

    def _submit(self, engine_id: str, gen: GenerationRequest, sink: DeltaSink) -> None:
        if gen.sampling.max_tokens == 999:
            raise ResourceExhausted("the request can never fit in the KV pool")
        stop = self._stop.setdefault(engine_id, threading.Event())
        threading.Thread(target=self._emit, args=(gen, sink, stop), daemon=True).start()

    def _emit(self, gen: GenerationRequest, sink: DeltaSink, stop: threading.Event) -> None:
        n = min(gen.sampling.max_tokens, len(self._script))
        for step in range(n):
            self.gate(step)
            if stop.is_set():
                sink(TokenDelta.cancelled())
                return
            last = step == n - 1
            sink(
                TokenDelta(
                    (self._script[step],), finished=last, finish_reason=FinishReason.LENGTH if last else None
                )
            )

    def _abort(self, engine_id: str) -> None:
        self.aborted.append(engine_id)
        self._stop.setdefault(engine_id, threading.Event()).set()

    def _finish(self, engine_id: str) -> None:
        self.finished.append(engine_id)
        self._abort(engine_id)


def _backend(tok: TextTokenizer, text: str) -> ScriptedBackend:
    backend = ScriptedBackend(tok, tok.encode(text, add_special_tokens=False))
    backend.load()
    return backend


async def _collect(backend: LLMBackend, request: InferRequest) -> list[InferResponse]:
    return [r async for r in backend.infer(request)]


def test_streaming_and_whole_text_agree(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "one two three 🙂 four")

    async def main() -> tuple[list[InferResponse], list[InferResponse]]:
        streams = [llm_request(f"s{i}", text_input="q", max_tokens=100, stream=True) for i in range(8)]
        whole = llm_request("w", text_input="q", max_tokens=100, exclude_input_in_output=True)
        results = await asyncio.gather(*(_collect(backend, r) for r in [*streams, whole]))
        return results[0], results[-1]

    streamed, whole = asyncio.run(main())
    assert "".join(text_of(r) for r in streamed) == text_of(whole[0]) == "one two three 🙂 four"
    assert streamed[-1].final and not any(r.final for r in streamed[:-1])
    assert backend.num_in_flight == 0


def test_client_cancel_aborts_the_engine_request(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "word " * 50)
    release = threading.Event()
    backend.gate = lambda step: release.wait(10) if step >= 2 else None

    async def main() -> list[InferResponse]:
        request = llm_request("c", text_input="q", max_tokens=100, stream=True)
        responses = []
        async for r in backend.infer(request):
            responses.append(r)
            if len(responses) == 1:
                request.cancel.cancel()
                release.set()
        return responses

    responses = asyncio.run(main())
    assert isinstance(responses[-1].error, Cancelled)
    assert len(backend.aborted) == 1
    assert backend.num_in_flight == 0


def test_stop_request_with_the_same_id_ends_the_running_request(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "word " * 50)
    release = threading.Event()
    backend.gate = lambda step: release.wait(10) if step >= 1 else None

    async def main() -> tuple[list[InferResponse], list[InferResponse]]:
        running = llm_request("job-7", input_ids=[1, 2], request_output_len=40, streaming=True)
        responses = []
        async for r in backend.infer(running):
            responses.append(r)
            if len(responses) == 1:
                stop = llm_request("job-7", input_ids=[1], input_lengths=0, request_output_len=0, stop=True)
                stop_responses = await _collect(backend, stop)
                release.set()
        return responses, stop_responses

    responses, stop_responses = asyncio.run(main())
    assert len(stop_responses) == 1 and stop_responses[0].is_empty_final
    assert responses[-1].final and responses[-1].error is None
    assert output(responses[-1], "output_ids").shape == (1, 1, 0)
    assert backend.aborted and backend.num_in_flight == 0


def test_stop_string_tells_the_engine_to_finish(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "alpha beta gamma delta")
    request = llm_request(text_input="q", max_tokens=100, stop_words=[" gamma"], exclude_input_in_output=True)
    [response] = asyncio.run(_collect(backend, request))
    assert text_of(response) == "alpha beta"
    assert output(response, "finish_reason")[0, 0] == b"stop"
    assert len(backend.finished) == 1


def test_engine_failure_reaches_every_running_request(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "word " * 50)
    started, hold = threading.Event(), threading.Event()
    backend.gate = lambda step: (started.set(), hold.wait(10)) if step >= 1 else None

    async def main() -> list[list[InferResponse]]:
        async def fail_when_started() -> None:
            await asyncio.to_thread(started.wait, 10)
            backend.fail_in_flight("the engine failed: boom")
            hold.set()

        requests = [llm_request(f"f{i}", text_input="q", max_tokens=100, stream=True) for i in range(3)]
        results = await asyncio.gather(*(_collect(backend, r) for r in requests), fail_when_started())
        return list(results[:3])

    for responses in asyncio.run(main()):
        assert responses[-1].final and "boom" in str(responses[-1].error)


def test_submit_errors_propagate_and_leave_nothing_behind(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "x")
    with pytest.raises(ResourceExhausted):
        asyncio.run(_collect(backend, llm_request(text_input="q", max_tokens=999)))
    with pytest.raises(InvalidInput):
        asyncio.run(_collect(backend, llm_request(text_input="q", max_tokens=-1)))
    assert backend.num_in_flight == 0


def test_not_ready_before_load(bpe_tokenizer: TextTokenizer) -> None:
    backend = ScriptedBackend(bpe_tokenizer, [1])
    with pytest.raises(ModelNotReady):
        asyncio.run(_collect(backend, llm_request(text_input="q", max_tokens=1)))


def test_consumer_going_away_aborts_the_request(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "word " * 50)

    async def main() -> None:
        stream = backend.infer(llm_request(text_input="q", max_tokens=100, stream=True))
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())
    assert len(backend.aborted) == 1 and backend.num_in_flight == 0


def test_usage_is_recorded_before_the_final_response(bpe_tokenizer: TextTokenizer) -> None:
    backend = _backend(bpe_tokenizer, "a b c d")
    request = llm_request(input_ids=[1, 2, 3], request_output_len=3, streaming=True)

    async def main() -> list[object]:
        seen = []
        async for r in backend.infer(request):
            seen.append(request.usage if r.final else None)
        return seen

    seen = asyncio.run(main())
    usage = seen[-1]
    assert usage is not None and (usage.prompt_tokens, usage.output_tokens, usage.finish_reason) == (
        3,
        3,
        "length",
    )
