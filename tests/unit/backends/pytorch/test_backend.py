"""PyTorchBackend: parameters, config auto-complete, and serving a tiny checkpoint on its engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from server.backends.base import ModelVersionSpec
from server.backends.pytorch.backend import PyTorchBackend, PyTorchParameters
from server.engine.stats import SchedulerStats
from server.errors import ConfigError, InvalidInput, LoadError
from server.repository.model_config import ModelConfig
from server.types import InferRequest, InferResponse
from tests.support.llm_requests import llm_request, output, text_of
from tests.support.tiny_llm import hf_greedy, tiny_llm


def _config(**params: str) -> ModelConfig:
    return ModelConfig.from_dict(
        {
            "name": "tiny",
            "backend": "pytorch",
            "model_transaction_policy": {"decoupled": True},
            "parameters": {k: {"string_value": v} for k, v in params.items()},
        }
    )


def test_parameters_defaults_and_values() -> None:
    assert PyTorchParameters.from_config(_config()) == PyTorchParameters()
    p = PyTorchParameters.from_config(
        _config(
            max_num_seqs="8", num_blocks="32", enable_prefix_caching="false", dtype="float32", device="cpu"
        )
    )
    assert (p.max_num_seqs, p.num_blocks, p.enable_prefix_caching, p.dtype) == (8, 32, False, "float32")
    assert p.checkpoint_dir(Path("/m/1")) == Path("/m/1")
    assert PyTorchParameters(checkpoint_path="hf").checkpoint_dir(Path("/m/1")) == Path("/m/1/hf")


@pytest.mark.parametrize("choice", ["auto", "native", "torch"])
def test_attention_backend_parameter_takes_each_choice(choice: str) -> None:
    assert PyTorchParameters().attention_backend == "auto"
    assert PyTorchParameters.from_config(_config(attention_backend=choice)).attention_backend == choice


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (
            {"max_num_seq": "8"},
            "unknown pytorch parameter(s) max_num_seq; valid parameters: attention_backend, block_size",
        ),
        ({"num_blocks": "many"}, "num_blocks: expected an integer, got 'many'"),
        ({"enable_prefix_caching": "maybe"}, "expected true or false"),
        ({"block_size": "0"}, "block_size must be >= 1, got 0"),
        ({"kv_cache_free_mem_fraction": "1.5"}, "(0, 1], got 1.5"),
        ({"num_blocks": "8", "kv_cache_free_mem_fraction": "0.5"}, "not both"),
        ({"max_num_seqs": "128", "max_num_batched_tokens": "64"}, "must be >= max_num_seqs"),
        ({"dtype": "${dtype}"}, "template placeholders: dtype='${dtype}'"),
        ({"attention_backend": "flash"}, "attention_backend must be one of auto, native, torch, got 'flash'"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        PyTorchBackend.auto_complete_config(_config(**params), Path("."))
    assert fragment in str(e.value)


def test_auto_complete_fills_both_contracts() -> None:
    config = PyTorchBackend.auto_complete_config(_config(), Path("."))
    names = {t.name for t in config.inputs}
    assert {"text_input", "max_tokens", "input_ids", "request_output_len", "stop"} <= names
    assert config.max_batch_size == 64


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyTorchBackend]:
    torch.set_num_threads(1)
    path = tiny_llm(tmp_path_factory, "llama")
    config = PyTorchBackend.auto_complete_config(
        _config(num_blocks="64", device="cpu", max_model_len="256"), path
    )
    b = PyTorchBackend(ModelVersionSpec("tiny", 1, config, path.parent, path))
    b.load()
    yield b
    b.unload()
    assert not b.ready


async def _collect(b: PyTorchBackend, request: InferRequest) -> list[InferResponse]:
    return [r async for r in b.infer(request)]


def test_token_contract_matches_transformers_greedy(backend: PyTorchBackend) -> None:
    prompt = [1, 17, 42, 99, 7]
    [want] = hf_greedy(backend.spec.version_dir, [prompt], max_new_tokens=6)
    req = llm_request(input_ids=prompt, request_output_len=6, exclude_input_in_output=True, end_id=0)
    [response] = asyncio.run(_collect(backend, req))
    assert output(response, "output_ids").reshape(-1).tolist() == want


def test_streamed_text_equals_the_whole_text(backend: PyTorchBackend) -> None:
    async def main() -> tuple[list[InferResponse], list[InferResponse]]:
        s = llm_request("s", text_input="Hello world", max_tokens=12, stream=True, min_tokens=12)
        w = llm_request(
            "w", text_input="Hello world", max_tokens=12, min_tokens=12, exclude_input_in_output=True
        )
        streamed, whole = await asyncio.gather(_collect(backend, s), _collect(backend, w))
        return streamed, whole

    streamed, [whole] = asyncio.run(main())
    assert "".join(text_of(r) for r in streamed) == text_of(whole)
    assert streamed[-1].final and output(streamed[-1], "finish_reason")[0, 0] == b"length"


def _stats(b: PyTorchBackend) -> SchedulerStats:
    stats = b.engine_stats()
    assert stats is not None
    return stats


def test_cancel_frees_the_requests_blocks_within_one_step(backend: PyTorchBackend) -> None:
    cancelled_at: list[int] = []

    async def main() -> list[InferResponse]:
        request = llm_request("c", input_ids=[1, 2, 3] * 10, request_output_len=200, streaming=True)
        responses = []
        async for r in backend.infer(request):
            responses.append(r)
            if len(responses) == 2:
                assert _stats(backend).kv_blocks_used > 0
                cancelled_at.append(_stats(backend).step_counter)
                request.cancel.cancel()
        return responses

    responses = asyncio.run(main())
    assert responses[-1].error is not None and "cancelled" in str(responses[-1].error)
    # The stats snapshot is refreshed after each engine turn: poll it (bounded) until the abort shows.
    deadline = time.monotonic() + 10
    while _stats(backend).kv_blocks_used and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    stats = _stats(backend)
    assert stats.kv_blocks_used == 0
    # At most the step already running when the cancel arrived, then the blocks are free.
    assert stats.step_counter <= cancelled_at[0] + 2


def test_bad_input_is_refused_before_the_engine(backend: PyTorchBackend) -> None:
    vocab = backend.limits.vocab_size if backend.limits else 0
    with pytest.raises(InvalidInput, match=f"outside the vocabulary \\[0, {vocab}\\)"):
        asyncio.run(_collect(backend, llm_request(input_ids=[1, vocab], request_output_len=2)))
    with pytest.raises(InvalidInput, match="max_model_len 256"):
        asyncio.run(_collect(backend, llm_request(input_ids=[1, 2], request_output_len=300)))


def test_missing_checkpoint_is_a_load_error(tmp_path: Path) -> None:
    config = PyTorchBackend.auto_complete_config(_config(checkpoint_path="nope"), tmp_path)
    with pytest.raises(LoadError, match="nope"):
        PyTorchBackend(ModelVersionSpec("tiny", 1, config, tmp_path, tmp_path)).load()


def test_attention_backend_parameter_reaches_the_runner(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tiny_llm(tmp_path_factory, "llama")
    config = PyTorchBackend.auto_complete_config(
        _config(num_blocks="16", device="cpu", max_model_len="128", attention_backend="torch"), path
    )
    b = PyTorchBackend(ModelVersionSpec("tiny", 1, config, path.parent, path))
    b.load()
    try:
        assert b._engine is not None and b._engine._runner.attention_backend == "torch"
    finally:
        b.unload()


def test_engine_crash_fails_in_flight_requests_and_marks_not_ready(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tiny_llm(tmp_path_factory, "llama")
    config = PyTorchBackend.auto_complete_config(
        _config(num_blocks="16", device="cpu", max_model_len="128"), path
    )
    b = PyTorchBackend(ModelVersionSpec("tiny", 1, config, path.parent, path))
    b.load()
    engine = b._engine
    assert engine is not None
    runner = engine._runner
    real_execute = runner.execute
    calls = 0

    def crash_on_third_step(items):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("device lost")
        return real_execute(items)

    runner.execute = crash_on_third_step  # type: ignore[method-assign]
    try:
        responses = asyncio.run(
            _collect(b, llm_request(input_ids=[1, 2, 3], request_output_len=50, streaming=True))
        )
        assert "device lost" in str(responses[-1].error)
        assert not b.ready
    finally:
        b.unload()
