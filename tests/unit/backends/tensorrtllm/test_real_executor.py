"""Against the real tensorrt_llm package and a real engine (skipped unless both are there).

Run on a GPU machine with tensorrt-llm 1.2.x installed and an engine built by trtllm-build:
    HANGAR_TRTLLM_ENGINE_DIR=/engines/llama HANGAR_TRTLLM_TOKENIZER_DIR=/hf/llama \
        python -m pytest tests/unit/backends/tensorrtllm/test_real_executor.py -m trtllm
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from server.backends.base import ModelVersionSpec
from server.backends.tensorrtllm.backend import TensorRTLLMBackend
from server.repository.model_config import ModelConfig
from tests.support.llm_requests import llm_request, output, text_of

ENGINE_DIR = os.environ.get("HANGAR_TRTLLM_ENGINE_DIR", "")
TOKENIZER_DIR = os.environ.get("HANGAR_TRTLLM_TOKENIZER_DIR", "")

pytestmark = [
    pytest.mark.trtllm,
    pytest.mark.gpu,
    pytest.mark.skipif(
        not ENGINE_DIR, reason="set HANGAR_TRTLLM_ENGINE_DIR to a trtllm-build engine directory"
    ),
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> TensorRTLLMBackend:
    version_dir = tmp_path_factory.mktemp("trt") / "1"
    version_dir.mkdir()
    params = {"gpt_model_path": ENGINE_DIR, "kv_cache_free_gpu_mem_fraction": "0.5"}
    if TOKENIZER_DIR:
        params["tokenizer_dir"] = TOKENIZER_DIR
    raw = {
        "name": "trt",
        "backend": "tensorrtllm",
        "model_transaction_policy": {"decoupled": True},
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }
    config = TensorRTLLMBackend.auto_complete_config(ModelConfig.from_dict(raw), version_dir.parent)
    b = TensorRTLLMBackend(ModelVersionSpec("trt", 1, config, version_dir.parent, Path(version_dir)))
    b.load()
    return b


def test_token_contract_streams_and_matches_the_whole_output(backend: TensorRTLLMBackend) -> None:
    async def run(stream: bool) -> list[int]:
        request = llm_request(input_ids=[1, 450, 4996, 17354], request_output_len=16, streaming=stream,
                              exclude_input_in_output=True)  # fmt: skip
        return [
            t for r in [x async for x in backend.infer(request)] for t in output(r, "output_ids").reshape(-1)
        ]

    assert asyncio.run(run(True)) == asyncio.run(run(False))


@pytest.mark.skipif(not TOKENIZER_DIR, reason="set HANGAR_TRTLLM_TOKENIZER_DIR for the text contract")
def test_text_contract_and_stats(backend: TensorRTLLMBackend) -> None:
    async def run() -> list[str]:
        request = llm_request(text_input="The capital of France is", max_tokens=16, stream=True)
        return [text_of(r) async for r in backend.infer(request)]

    assert "".join(asyncio.run(run()))
    stats = backend.engine_stats()
    assert stats is not None and stats.kv_blocks_total > 0


def test_cancel_with_log_probs_does_not_crash_the_executor(backend: TensorRTLLMBackend) -> None:
    """TRTLLM #10810: aborting a streaming request with log-probs crashed the engine path in 1.1/1.2rc."""

    async def run() -> None:
        request = llm_request(
            input_ids=[1, 450, 4996], request_output_len=200, streaming=True, return_log_probs=True
        )
        async for _ in backend.infer(request):
            request.cancel.cancel()

    asyncio.run(run())
    assert backend.ready
