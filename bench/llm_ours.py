"""Hangar's engines in bench/engine_throughput.py: (c) the engine offline and (d) the server over gRPC."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from llm_workload import Result, StreamClock, Workload, latencies, wait_until

from server.backends.pytorch.runner import PyTorchModelRunner
from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import RequestOutput
from server.engine.sampling_params import SamplingParams


def kv_blocks(work: Workload) -> int:
    """Enough 16-token blocks for every request at full length, twice over: no preemption."""
    tokens = sum(len(p) + n for p, n in zip(work.prompts, work.output_lens, strict=True))
    return (tokens // 16 + len(work.prompts)) * 2


def load_runner(model_dir: Path, work: Workload, args: argparse.Namespace) -> PyTorchModelRunner:
    longest = max(len(p) + n for p, n in zip(work.prompts, work.output_lens, strict=True))
    return PyTorchModelRunner.from_checkpoint(
        model_dir,
        dtype=args.dtype,
        device=args.device,
        block_size=16,
        num_blocks=kv_blocks(work),
        max_num_batched_tokens=args.max_batched_tokens,
        max_model_len=longest,
    )


def run_hangar(runner: PyTorchModelRunner, work: Workload, mode: str, args: argparse.Namespace) -> Result:
    """(c): EngineLoop + PyTorchModelRunner in process; latencies from on_output callback times."""
    config = EngineConfig.from_runner(
        runner,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_batched_tokens,
        enable_prefix_caching=False,
    )
    loop = EngineLoop(runner, config)
    loop.start()
    outputs: dict[int, list[int]] = {i: [] for i in range(len(work.prompts))}
    clocks: list[StreamClock] = []
    done = threading.Semaphore(0)

    def on_output(i: int, clock: StreamClock) -> Callable[[RequestOutput], None]:
        def deliver(out: RequestOutput) -> None:
            if out.new_token_ids:
                clock.delta()
            outputs[i].extend(out.new_token_ids)
            if out.finished:
                if out.error:
                    print(f"request {i} failed: {out.error}", file=sys.stderr)
                done.release()

        return deliver

    start = time.perf_counter()
    try:
        for i, (prompt, n) in enumerate(zip(work.prompts, work.output_lens, strict=True)):
            wait_until(start, work.arrivals[i])
            params = SamplingParams(max_tokens=n, min_tokens=n, temperature=0.0, ignore_eos=True)
            clocks.append(StreamClock())
            loop.submit(f"{mode}-{i}", prompt, params, on_output(i, clocks[-1]))
        for _ in work.prompts:
            if not done.acquire(timeout=600):
                raise RuntimeError("the engine did not finish the workload in 10 minutes")
        seconds = time.perf_counter() - start
    finally:
        loop.shutdown()
    return Result(
        "(c) Hangar engine, offline",
        mode,
        seconds,
        work.useful_tokens,
        [outputs[i] for i in range(len(work.prompts))],
        latencies(clocks),
    )


@contextlib.contextmanager
def grpc_server(model_dir: Path, work: Workload, args: argparse.Namespace) -> Iterator[str | None]:
    """`hangar serve` (a separate process) on a temporary repository holding `model_dir` on the pytorch
    backend with the engine settings of (c); yields its gRPC url, or None when tritonclient or the
    server pieces are missing. One server serves every mode."""
    try:
        from tests.support.server import server_process
    except ImportError as e:
        print(f"(d) Hangar over gRPC: skipped ({e})")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="hangar-bench-repo-") as tmp:
        repo = Path(tmp)
        (repo / "llm" / "1").mkdir(parents=True)
        params = {
            "checkpoint_path": str(model_dir.resolve()), "device": args.device, "dtype": args.dtype,
            "num_blocks": str(kv_blocks(work)), "max_num_seqs": str(args.max_num_seqs),
            "max_num_batched_tokens": str(args.max_batched_tokens), "enable_prefix_caching": "false",
        }  # fmt: skip
        entries = "".join(
            f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in params.items()
        )
        config = f'name: "llm"\nbackend: "pytorch"\nmodel_transaction_policy {{ decoupled: true }}\n{entries}'
        (repo / "llm" / "config.pbtxt").write_text(config)
        with server_process(["--model-repository", str(repo)]) as proc:
            yield proc.url


def run_grpc(url: str, work: Workload, mode: str) -> Result:
    """(d): streams every request over ModelStreamInfer with tritonclient's asyncio client (token
    contract, greedy, one stream per request, each opened at its arrival time); latencies are taken
    by the client from the streamed deltas."""
    outputs, clocks, seconds = asyncio.run(_stream_all(url, work))
    return Result(
        "(d) Hangar over gRPC (tritonclient streams)",
        mode,
        seconds,
        work.useful_tokens,
        outputs,
        latencies(clocks),
    )


def _inputs(prompt: list[int], n: int) -> list[Any]:
    import tritonclient.grpc as grpcclient

    def tensor(name: str, array: np.ndarray, dtype: str) -> Any:
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    return [
        tensor("input_ids", np.array([prompt], dtype=np.int32), "INT32"),
        tensor("input_lengths", np.array([[len(prompt)]], dtype=np.int32), "INT32"),
        tensor("request_output_len", np.array([[n]], dtype=np.int32), "INT32"),
        tensor("min_tokens", np.array([[n]], dtype=np.int32), "INT32"),
        tensor("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
        tensor("streaming", np.array([[True]]), "BOOL"),
    ]


async def _stream_all(url: str, work: Workload) -> tuple[list[list[int]], list[StreamClock], float]:
    import tritonclient.grpc.aio as aioclient

    clocks: list[StreamClock] = []

    async def one(client: Any, i: int, start: float) -> list[int]:
        inputs = _inputs(work.prompts[i], work.output_lens[i])
        delay = start + work.arrivals[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

        async def requests() -> Any:
            yield {"model_name": "llm", "inputs": inputs, "request_id": f"r{i}"}

        clock = StreamClock()
        clocks.append(clock)
        tokens: list[int] = []
        async for result, error in client.stream_infer(requests()):
            if error is not None:
                raise RuntimeError(f"request {i} failed: {error}")
            ids = result.as_numpy("output_ids")
            if ids is not None and ids.size:
                clock.delta()
                tokens += ids.reshape(-1).tolist()
        return tokens

    async with aioclient.InferenceServerClient(url) as client:
        start = time.perf_counter()
        outputs = await asyncio.gather(*(one(client, i, start) for i in range(len(work.prompts))))
        return list(outputs), clocks, time.perf_counter() - start
