"""The PyTorch runner on CUDA: greedy parity with transformers, the engine loop, seeded sampling, speed."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from server.backends.pytorch.runner import PyTorchModelRunner
from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import RequestOutput
from server.engine.runner import BatchItem
from server.engine.sampling_params import SamplingParams
from tests.support.tiny_llm import ARCHITECTURES, build_tiny_llm, off_argmax_steps, tiny_llm
from tests.unit.backends.pytorch.driver import PagedDriver, greedy_seqs

pytestmark = pytest.mark.gpu


def prompts(vocab: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, vocab) for _ in range(n - 1)] for n in lengths]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_greedy_is_transformers_argmax(
    tmp_path_factory: pytest.TempPathFactory, arch: str, dtype: str
) -> None:
    path = tiny_llm(tmp_path_factory, arch)
    runner = PyTorchModelRunner.from_checkpoint(
        path, device="cuda", dtype=dtype, num_blocks=128, block_size=16
    )
    assert runner.device.type == "cuda" and runner.cache.pool.dtype == getattr(torch, dtype)
    batch = prompts(runner.vocab_size, [5, 41, 17, 2, 60], seed=1)
    seqs = PagedDriver(runner, token_budget=48, max_chunk=20).run(
        greedy_seqs(batch, 10, arrivals=[0, 0, 2, 3, 5])
    )
    for seq in seqs:
        assert (
            off_argmax_steps(path, seq.prompt, seq.outputs, dtype=getattr(torch, dtype), device="cuda") == []
        )


def test_float32_on_cuda_is_transformers_argmax(tmp_path_factory: pytest.TempPathFactory) -> None:
    """float32 on the GPU: every greedy token is transformers' argmax up to float32 rounding (GPU kernels
    sum in other orders than the CPU, so exact ties may break differently)."""
    path = tiny_llm(tmp_path_factory, "llama")
    runner = PyTorchModelRunner.from_checkpoint(
        path, device="cuda", dtype="float32", num_blocks=64, block_size=16
    )
    batch = prompts(runner.vocab_size, [7, 30, 12], seed=2)
    for seq in PagedDriver(runner).run(greedy_seqs(batch, 12)):
        assert off_argmax_steps(path, seq.prompt, seq.outputs, device="cuda", tolerance=1e-4) == []


def test_auto_picks_cuda_and_half_precision(tmp_path_factory: pytest.TempPathFactory) -> None:
    runner = PyTorchModelRunner.from_checkpoint(tiny_llm(tmp_path_factory, "qwen3"), num_blocks=8)
    assert runner.device.type == "cuda" and runner.cache.pool.dtype in (torch.bfloat16, torch.float16)


def test_memory_fraction_sizes_pool_from_free_gpu_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tiny_llm(tmp_path_factory, "llama")
    runner = PyTorchModelRunner.from_checkpoint(path, device="cuda", kv_cache_memory_fraction=0.01)
    free, _ = torch.cuda.mem_get_info()
    assert runner.num_blocks > 100
    assert runner.cache.pool.numel() * runner.cache.pool.element_size() < free


def test_seeded_sampling_is_deterministic_on_cuda(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tiny_llm(tmp_path_factory, "llama")
    params = SamplingParams(max_tokens=10, temperature=0.8, top_p=0.9, seed=11, ignore_eos=True)
    runs = []
    for _ in range(2):
        runner = PyTorchModelRunner.from_checkpoint(path, device="cuda", num_blocks=64)
        seqs = greedy_seqs(prompts(runner.vocab_size, [9, 14]), 10)
        for s in seqs:
            s.sampling = params
        runs.append([s.outputs for s in PagedDriver(runner).run(seqs)])
    assert runs[0] == runs[1]


def test_engine_loop_on_cuda_finishes_and_frees_every_block(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tiny_llm(tmp_path_factory, "mistral")
    runner = PyTorchModelRunner.from_checkpoint(path, device="cuda", num_blocks=48, block_size=16)
    loop = EngineLoop(runner, EngineConfig.from_runner(runner, max_num_seqs=16, max_num_batched_tokens=256))
    batch = prompts(runner.vocab_size, [random.Random(i).randrange(4, 120) for i in range(24)], seed=3)
    outputs: dict[int, list[int]] = {i: [] for i in range(len(batch))}
    done = threading.Semaphore(0)

    def collect(i: int) -> Callable[[RequestOutput], None]:
        def deliver(out: RequestOutput) -> None:
            outputs[i].extend(out.new_token_ids)
            if out.finished:
                assert out.error is None, out.error
                done.release()

        return deliver

    loop.start()
    try:
        for i, p in enumerate(batch):
            loop.submit(
                f"r{i}", p, SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True), collect(i)
            )
        for _ in batch:
            assert done.acquire(timeout=120)
    finally:
        loop.shutdown()
    assert loop.stats().kv_blocks_used == 0
    for i, p in enumerate(batch):
        assert off_argmax_steps(path, p, outputs[i], dtype=runner.dtype, device="cuda") == []


def test_decode_throughput_batch_64(tmp_path: Path) -> None:
    """Prints decode tokens/s at batch 64 on a ~100M-parameter model in bfloat16 (a smoke figure; the
    full comparison is bench/engine_throughput.py)."""
    path = build_tiny_llm(
        tmp_path / "m", "llama", hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
        num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=2048,
    )  # fmt: skip
    runner = PyTorchModelRunner.from_checkpoint(path, device="cuda", dtype="bfloat16", num_blocks=64 * 40)
    params = SamplingParams(max_tokens=512, temperature=0.0, ignore_eos=True)
    tables = [list(range(i * 40, (i + 1) * 40)) for i in range(64)]
    items = [BatchItem(f"r{i}", [5], 511, tables[i], True, params, 256, [5] * 255) for i in range(64)]
    for _ in range(3):
        runner.execute(items)
    torch.cuda.synchronize()
    start = time.perf_counter()
    steps = 20
    for _ in range(steps):
        outs = runner.execute(items)
    elapsed = time.perf_counter() - start
    assert all(o is not None and o.error is None for o in outs)
    rate, ms = 64 * steps / elapsed, elapsed / steps * 1e3
    print(f"decode batch 64, context 512: {rate:.0f} tokens/s ({ms:.1f} ms/step)")
