"""TensorRTLLMBackend over the Executor stand-in: both contracts, streaming, cancel, stop, stats, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from server.backends.base import BackendRegistry, ModelVersionSpec
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.tensorrtllm.backend import TensorRTLLMBackend
from server.errors import BackendError, LoadError, ModelNotReady
from server.repository.model_config import ModelConfig
from server.types import InferRequest, InferResponse
from tests.support.llm_requests import llm_request, output, text_of
from tests.support.tiny_tokenizer import byte_level_bpe
from tests.support.trtllm_executor import Executor, fake_tensorrt_llm, next_token, write_engine_dir

VOCAB = 300


def _spec(version_dir: Path, **params: str) -> ModelVersionSpec:
    raw = {
        "name": "trt",
        "backend": "tensorrtllm",
        "model_transaction_policy": {"decoupled": True},
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }
    config = TensorRTLLMBackend.auto_complete_config(ModelConfig.from_dict(raw), version_dir.parent)
    return ModelVersionSpec("trt", 1, config, version_dir.parent, version_dir)


@pytest.fixture
def trt(tmp_path: Path) -> Iterator[ModuleType]:
    with fake_tensorrt_llm(tmp_path) as module:
        yield module


@pytest.fixture
def backend(trt: ModuleType, tmp_path: Path) -> Iterator[TensorRTLLMBackend]:
    version_dir = tmp_path / "repo" / "trt" / "1"
    engine = write_engine_dir(version_dir / "engine", vocab_size=VOCAB, max_seq_len=256)
    byte_level_bpe(VOCAB).save_pretrained(str(engine))
    b = TensorRTLLMBackend(_spec(version_dir, gpt_model_path="engine", max_tokens_in_paged_kv_cache="2048"))
    b.load()
    yield b
    b.unload()


def _executor() -> Executor:
    return Executor.instances[-1]


async def _collect(b: TensorRTLLMBackend, request: InferRequest) -> list[InferResponse]:
    return [r async for r in b.infer(request)]


def _expected(prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        ids.append(next_token(ids, VOCAB))
    return ids[len(prompt) :]


def test_registry_finds_the_backend() -> None:
    assert BackendRegistry().get("tensorrtllm") is TensorRTLLMBackend


def test_load_builds_the_executor_from_parameters(backend: TensorRTLLMBackend, trt: ModuleType) -> None:
    executor = _executor()
    assert executor.model_type is trt.ModelType.DECODER_ONLY
    assert executor.config.kv_cache_config.max_tokens == 2048
    assert backend.ready and backend.limits is not None
    assert (backend.limits.vocab_size, backend.limits.max_model_len) == (VOCAB, 256)
    assert backend.tokenizer is not None


def test_token_contract_round_trip(backend: TensorRTLLMBackend) -> None:
    prompt = [5, 6, 7]
    want = _expected(prompt, 6)
    [whole] = asyncio.run(_collect(backend, llm_request(input_ids=prompt, request_output_len=6)))
    assert output(whole, "output_ids").tolist() == [[[*prompt, *want]]]
    streamed = asyncio.run(
        _collect(backend, llm_request(input_ids=prompt, request_output_len=6, streaming=True))
    )
    assert [t for r in streamed for t in output(r, "output_ids").reshape(-1).tolist()] == want
    assert [int(output(r, "sequence_length")[0, 0]) for r in streamed] == [1] * 6
    assert streamed[-1].final


def test_end_id_stops_generation(backend: TensorRTLLMBackend) -> None:
    prompt = [9, 9]
    want = _expected(prompt, 5)
    request = llm_request(
        input_ids=prompt, request_output_len=5, end_id=want[3], exclude_input_in_output=True
    )
    [r] = asyncio.run(_collect(backend, request))
    assert output(r, "output_ids").reshape(-1).tolist() == want[:3]
    assert output(r, "finish_reason") is None  # token contract default outputs


def test_text_streams_concatenate_to_the_whole_text(backend: TensorRTLLMBackend) -> None:
    async def main() -> tuple[list[list[InferResponse]], list[InferResponse]]:
        streams = [llm_request(f"s{i}", text_input="Hello", max_tokens=24, stream=True) for i in range(8)]
        whole = llm_request("w", text_input="Hello", max_tokens=24, exclude_input_in_output=True)
        results = await asyncio.gather(*(_collect(backend, r) for r in [*streams, whole]))
        return list(results[:-1]), results[-1]

    streams, [whole] = asyncio.run(main())
    for streamed in streams:
        assert "".join(text_of(r) for r in streamed) == text_of(whole)
    assert output(whole, "finish_reason")[0, 0] == b"length"


def test_cancel_reaches_the_executor(backend: TensorRTLLMBackend) -> None:
    release = threading.Event()
    _executor().before_iteration = lambda i: release.wait(10) if i >= 3 else None

    async def main() -> list[InferResponse]:
        request = llm_request("c", input_ids=[1, 2], request_output_len=100, streaming=True)
        responses = []
        async for r in backend.infer(request):
            responses.append(r)
            if len(responses) == 1:
                request.cancel.cancel()
                release.set()
        return responses

    responses = asyncio.run(main())
    assert "cancelled" in str(responses[-1].error)
    deadline = time.monotonic() + 10
    while _executor().num_active and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    assert _executor().num_active == 0


def test_stop_by_request_id(backend: TensorRTLLMBackend) -> None:
    release = threading.Event()
    _executor().before_iteration = lambda i: release.wait(10) if i >= 2 else None

    async def main() -> tuple[list[InferResponse], list[InferResponse]]:
        responses, stop_responses = [], []
        async for r in backend.infer(
            llm_request("job", input_ids=[1, 2], request_output_len=100, streaming=True)
        ):
            responses.append(r)
            if len(responses) == 1:
                stop = llm_request("job", input_ids=[1], input_lengths=0, request_output_len=0, stop=True)
                stop_responses = await _collect(backend, stop)
                release.set()
        return responses, stop_responses

    responses, stop_responses = asyncio.run(main())
    assert stop_responses[0].is_empty_final
    assert responses[-1].final and responses[-1].error is None


def test_stats_come_from_iteration_stats(backend: TensorRTLLMBackend) -> None:
    asyncio.run(_collect(backend, llm_request(input_ids=[1] * 40, request_output_len=8)))
    deadline = time.monotonic() + 10
    stats = backend.engine_stats()
    while (stats is None or stats.prompt_tokens_total < 40) and time.monotonic() < deadline:
        threading.Event().wait(0.01)
        stats = backend.engine_stats()
    assert stats is not None
    assert stats.prompt_tokens_total == 40 and stats.generation_tokens_total == 7
    assert stats.kv_block_size == 32 and stats.kv_blocks_total == 64


def test_executor_failure_fails_requests_and_marks_not_ready(backend: TensorRTLLMBackend) -> None:
    hold = threading.Event()
    _executor().before_iteration = lambda i: hold.wait(10) if i >= 1 else None

    async def main() -> list[InferResponse]:
        responses = []
        async for r in backend.infer(llm_request(input_ids=[1, 2], request_output_len=50, streaming=True)):
            responses.append(r)
            if len(responses) == 1:
                _executor().fail("CUDA error: an illegal memory access was encountered")
        return responses

    responses = asyncio.run(main())
    hold.set()
    assert isinstance(responses[-1].error, BackendError) and "illegal memory access" in str(
        responses[-1].error
    )
    assert not backend.ready
    with pytest.raises(ModelNotReady):
        asyncio.run(_collect(backend, llm_request(input_ids=[1], request_output_len=2)))


def test_unload_shuts_the_executor_down(trt: ModuleType, tmp_path: Path) -> None:
    version_dir = tmp_path / "m" / "1"
    write_engine_dir(version_dir, vocab_size=VOCAB)
    b = TensorRTLLMBackend(_spec(version_dir))
    b.load()
    assert b.tokenizer is None  # token contract only
    executor = _executor()
    b.unload()
    assert not b.ready and not executor.can_enqueue_requests()


def test_load_errors_name_the_cause(trt: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no readable TensorRT-LLM engine config"):
        TensorRTLLMBackend(_spec(tmp_path / "m" / "1")).load()


def test_without_the_package_the_model_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(LoadError, match="tensorrt_llm is not installed"):
        TensorRTLLMBackend(_spec(write_engine_dir(tmp_path / "m" / "1", vocab_size=VOCAB))).load()


def test_text_requests_without_a_tokenizer_are_refused_clearly(trt: ModuleType, tmp_path: Path) -> None:
    b = TensorRTLLMBackend(_spec(write_engine_dir(tmp_path / "m" / "1", vocab_size=VOCAB)))
    b.load()
    try:
        with pytest.raises(Exception, match="no tokenizer"):
            asyncio.run(_collect(b, llm_request(text_input="hi", max_tokens=2)))
    finally:
        b.unload()


def test_tokenizer_is_found_beside_the_engine(
    tmp_path: Path, trt: ModuleType, bpe_tokenizer: TextTokenizer
) -> None:
    version_dir = tmp_path / "m" / "1"
    write_engine_dir(version_dir, vocab_size=VOCAB)
    byte_level_bpe(VOCAB).save_pretrained(str(version_dir / "tok"))
    b = TensorRTLLMBackend(_spec(version_dir, tokenizer_dir="tok"))
    b.load()
    try:
        assert b.tokenizer is not None and b.tokenizer.encode("Hello") == bpe_tokenizer.encode("Hello")
    finally:
        b.unload()
