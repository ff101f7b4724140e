"""LLM engine throughput on one seeded workload, side by side in one run (PERFORMANCE-TARGETS.md).

    python bench/engine_throughput.py            # full workload, every engine
    python bench/engine_throughput.py --quick    # a small smoke-test workload

Engines: (a) transformers `generate`, static batches of 16, left-padded, each batch runs to its longest
request; (b) transformers' continuous batching manager (the engine behind `generate_batch`); (c) Hangar's
engine offline (EngineLoop + PyTorchModelRunner, in process); (d) Hangar over gRPC (hook: `run_grpc`).
Every request runs its full length (min_tokens = max_tokens), so useful output tokens are known upfront.
Each engine runs the workload all at once and again with Poisson arrivals; figures are useful output
tokens per second, and ratios are against (a) in the same arrival mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.backends.pytorch.runner import PyTorchModelRunner  # noqa: E402
from server.engine.config import EngineConfig  # noqa: E402
from server.engine.loop import EngineLoop  # noqa: E402
from server.engine.outputs import RequestOutput  # noqa: E402
from server.engine.sampling_params import SamplingParams  # noqa: E402


@dataclass(frozen=True)
class Workload:
    prompts: list[list[int]]
    output_lens: list[int]
    arrivals: list[float]
    """Seconds after the start at which each request is submitted (all zero: all at once)."""

    @property
    def useful_tokens(self) -> int:
        return sum(self.output_lens)

    def head(self, n: int | None) -> Workload:
        """The first n requests (all of them when n is None)."""
        if n is None or n >= len(self.prompts):
            return self
        return Workload(self.prompts[:n], self.output_lens[:n], self.arrivals[:n])


@dataclass(frozen=True)
class Result:
    engine: str
    mode: str
    seconds: float
    tokens: int
    outputs: list[list[int]] | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def build_model(directory: Path, args: argparse.Namespace) -> Path:
    """A seeded-random Llama and a byte-level BPE tokenizer, saved as a Hugging Face checkpoint."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [
        "The quick brown fox jumps over the lazy dog while the engine streams tokens.",
        "café naïve résumé déjà vu, “quotes”, dashes and ümlauts.",
        "日本語のテキストと中文文本 and 한국어 mixed with English words.",
        "emoji 🙂🚀🎉 and symbols ∑ ∫ √ π in one line.",
    ] * 8
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=446,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = transformers.LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_prompt + args.max_output + 16,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(args.seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(str(directory))
    hf_tok.save_pretrained(str(directory))
    return directory


def make_workload(args: argparse.Namespace, vocab: int, poisson: bool) -> Workload:
    rng = np.random.default_rng(args.seed)
    n = args.requests
    prompt_lens = rng.integers(args.min_prompt, args.max_prompt + 1, n)
    output_lens = rng.integers(args.min_output, args.max_output + 1, n)
    prompts = [rng.integers(3, vocab, int(length)).tolist() for length in prompt_lens]
    gaps = rng.exponential(1.0 / args.arrival_rate, n) if poisson else np.zeros(n)
    arrivals = np.cumsum(gaps) - gaps[0]
    return Workload(prompts, [int(x) for x in output_lens], [float(a) for a in arrivals])


def wait_until(start: float, offset: float) -> None:
    delay = start + offset - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


# ---- (a) transformers generate, static batches ----------------------------------------------------


def run_hf_static(model: torch.nn.Module, work: Workload, mode: str, batch: int) -> Result:
    outputs: list[list[int]] = []
    start = time.perf_counter()
    for first in range(0, len(work.prompts), batch):
        prompts = work.prompts[first : first + batch]
        lens = work.output_lens[first : first + batch]
        wait_until(start, max(work.arrivals[first : first + batch]))
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        longest = max(lens)
        with torch.inference_mode():
            out = model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=longest,
                min_new_tokens=longest,
                pad_token_id=0,
                eos_token_id=2,
            )
        outputs += [out[row, width : width + n].tolist() for row, n in enumerate(lens)]
    return Result(
        "(a) transformers generate, static batches",
        mode,
        time.perf_counter() - start,
        work.useful_tokens,
        outputs,
    )


# ---- (b) transformers continuous batching ---------------------------------------------------------


def run_hf_continuous(model: torch.nn.Module, work: Workload, mode: str) -> Result:
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=False, max_new_tokens=max(work.output_lens), eos_token_id=-1, pad_token_id=0
    )
    start = time.perf_counter()
    results: dict[str, list[int]] = {}
    with model.continuous_batching_context_manager(
        generation_config=config, block=True, warmup=False
    ) as manager:  # type: ignore[operator]
        for i, (prompt, n) in enumerate(zip(work.prompts, work.output_lens, strict=True)):
            wait_until(start, work.arrivals[i])
            manager.add_request(prompt, request_id=f"r{i}", max_new_tokens=n, eos_token_id=-1)
        while len(results) < len(work.prompts):
            got = manager.get_result(timeout=1)
            if got is None:
                if not manager.is_running():
                    raise RuntimeError("transformers' continuous batching stopped producing results")
                continue
            if got.is_finished():
                results[got.request_id] = list(got.generated_tokens)
    outputs = [results[f"r{i}"] for i in range(len(work.prompts))]
    return Result(
        "(b) transformers continuous batching", mode, time.perf_counter() - start, work.useful_tokens, outputs
    )


# ---- (c) Hangar engine, offline -------------------------------------------------------------------


def kv_blocks(work: Workload) -> int:
    """Enough 16-token blocks for every request at full length, twice over: no preemption."""
    tokens = sum(len(p) + n for p, n in zip(work.prompts, work.output_lens, strict=True))
    return (tokens // 16 + len(work.prompts)) * 2


def load_runner(model_dir: Path, work: Workload, args: argparse.Namespace) -> PyTorchModelRunner:
    longest = max(len(p) + n for p, n in zip(work.prompts, work.output_lens, strict=True))
    return PyTorchModelRunner.from_checkpoint(
        model_dir,
        dtype=args.dtype,
        device="cpu",
        block_size=16,
        num_blocks=kv_blocks(work),
        max_num_batched_tokens=args.max_batched_tokens,
        max_model_len=longest,
    )


def run_hangar(runner: PyTorchModelRunner, work: Workload, mode: str, args: argparse.Namespace) -> Result:
    config = EngineConfig.from_runner(
        runner,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_batched_tokens,
        enable_prefix_caching=False,
    )
    loop = EngineLoop(runner, config)
    loop.start()
    outputs: dict[int, list[int]] = {i: [] for i in range(len(work.prompts))}
    done = threading.Semaphore(0)

    def on_output(i: int) -> Callable[[RequestOutput], None]:
        def deliver(out: RequestOutput) -> None:
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
            loop.submit(f"{mode}-{i}", prompt, params, on_output(i))
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
    )


# ---- (d) Hangar over gRPC -------------------------------------------------------------------------


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
            "checkpoint_path": str(model_dir.resolve()), "device": "cpu", "dtype": args.dtype,
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
    """Streams every request over ModelStreamInfer with tritonclient's asyncio client (token contract,
    greedy, one stream per request, each opened at its arrival time)."""
    outputs, seconds = asyncio.run(_stream_all(url, work))
    return Result("(d) Hangar over gRPC (tritonclient streams)", mode, seconds, work.useful_tokens, outputs)


async def _stream_all(url: str, work: Workload) -> tuple[list[list[int]], float]:
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as aioclient

    def tensor(name: str, array: np.ndarray, dtype: str) -> Any:
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    async def one(client: Any, i: int, start: float) -> list[int]:
        prompt, n = work.prompts[i], work.output_lens[i]
        inputs = [
            tensor("input_ids", np.array([prompt], dtype=np.int32), "INT32"),
            tensor("input_lengths", np.array([[len(prompt)]], dtype=np.int32), "INT32"),
            tensor("request_output_len", np.array([[n]], dtype=np.int32), "INT32"),
            tensor("min_tokens", np.array([[n]], dtype=np.int32), "INT32"),
            tensor("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
            tensor("streaming", np.array([[True]]), "BOOL"),
        ]
        delay = start + work.arrivals[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

        async def requests() -> Any:
            yield {"model_name": "llm", "inputs": inputs, "request_id": f"r{i}"}

        tokens: list[int] = []
        async for result, error in client.stream_infer(requests()):
            if error is not None:
                raise RuntimeError(f"request {i} failed: {error}")
            ids = result.as_numpy("output_ids")
            if ids is not None:
                tokens += ids.reshape(-1).tolist()
        return tokens

    async with aioclient.InferenceServerClient(url) as client:
        start = time.perf_counter()
        outputs = await asyncio.gather(*(one(client, i, start) for i in range(len(work.prompts))))
        return list(outputs), time.perf_counter() - start


# ---- driver ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a small workload and model, for smoke tests")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--min-prompt", type=int, default=16)
    p.add_argument("--max-prompt", type=int, default=512)
    p.add_argument("--min-output", type=int, default=16)
    p.add_argument("--max-output", type=int, default=256)
    p.add_argument("--arrival-rate", type=float, default=8.0, help="Poisson arrivals, requests per second")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1376)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--max-batched-tokens", type=int, default=2048)
    p.add_argument("--static-batch", type=int, default=16)
    p.add_argument(
        "--cb-requests",
        type=int,
        default=None,
        help="run (b) on the first N requests only (it is very slow on CPU; tokens/s stays comparable)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--engines", default=None, help="comma-separated subset of a,b,c,d (default: all; --quick: a,c,d)"
    )
    p.add_argument("--modes", default="all-at-once,poisson", help="comma-separated subset")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.max_prompt, args.max_output, args.min_output = 8, 48, 24, 4
        args.hidden, args.intermediate, args.layers, args.heads, args.kv_heads = 64, 128, 2, 4, 2
        args.arrival_rate = 50.0
    if args.engines is None:
        # transformers' continuous batching needs tens of seconds even for a toy run on CPU
        args.engines = "a,c,d" if args.quick else "a,b,c,d"
    return args


def machine() -> str:
    """CPU model, cores and load: on a shared machine the load says how far to trust the figures."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model
            )
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{model}, {os.cpu_count()} CPUs, load average {load}"


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\n{'engine':52} {'mode':12} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'vs (a)':>7}")
    for r in results:
        base = next((b for b in results if b.engine.startswith("(a)") and b.mode == r.mode), None)
        ratio = f"{r.tokens_per_s / base.tokens_per_s:6.2f}x" if base else "    n/a"
        print(f"{r.engine:52} {r.mode:12} {r.tokens:7d} {r.seconds:8.2f} {r.tokens_per_s:8.1f} {ratio}")
    if args.json:
        rows = [
            {
                "engine": r.engine,
                "mode": r.mode,
                "tokens": r.tokens,
                "seconds": r.seconds,
                "tokens_per_s": r.tokens_per_s,
            }
            for r in results
        ]
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": rows}, indent=2)
        )


def check_agreement(results: list[Result]) -> None:
    """Greedy engines must agree token for token with transformers' static batches where both ran."""
    base = {r.mode: r for r in results if r.engine.startswith("(a)") and r.outputs is not None}
    for r in results:
        ref = base.get(r.mode)
        if ref is None or r is ref or r.outputs is None or ref.outputs is None:
            continue
        same = sum(a == b for a, b in zip(r.outputs, ref.outputs, strict=False))
        print(f"{r.engine} [{r.mode}]: {same}/{len(r.outputs)} requests identical to (a)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp, contextlib.ExitStack() as stack:
        model_dir = build_model(Path(tmp), args)
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        hf_model.eval()
        vocab = hf_model.config.vocab_size
        params = sum(p.numel() for p in hf_model.parameters()) / 1e6
        print(f"machine: {machine()}")
        threads = torch.get_num_threads()
        print(f"model: Llama {params:.1f}M parameters, vocab {vocab}, {args.dtype}, {threads} torch threads")
        first = make_workload(args, vocab, poisson=False)
        engines = Engines(hf_model, first, args)
        if "c" in args.engines:
            engines.runner = load_runner(model_dir, first, args)
        if "d" in args.engines:
            engines.url = stack.enter_context(grpc_server(model_dir, first, args))
        engines.warm_up(first)
        for mode in args.modes.split(","):
            work = make_workload(args, vocab, poisson=mode == "poisson")
            print(
                f"[{mode}] {len(work.prompts)} requests, {work.useful_tokens} useful output tokens, "
                f"prompts {statistics.mean(len(p) for p in work.prompts):.0f} tokens on average"
            )
            results += engines.run(work, mode)
    report(results, args)
    check_agreement(results)
    return 0


class Engines:
    """The engines of one run, each warmed up once (first-call costs are not part of a figure)."""

    def __init__(self, hf_model: torch.nn.Module, work: Workload, args: argparse.Namespace) -> None:
        self.hf_model, self.args = hf_model, args
        self.selected = set(args.engines.split(","))
        self.runner: PyTorchModelRunner | None = None
        self.url: str | None = None

    def warm_up(self, work: Workload) -> None:
        tiny = Workload([work.prompts[0][:16]], [4], [0.0])
        if "a" in self.selected:
            run_hf_static(self.hf_model, tiny, "warm-up", 1)
        if self.runner is not None:
            run_hangar(self.runner, tiny, "warm-up", self.args)
        if self.url is not None:
            run_grpc(self.url, tiny, "warm-up")

    def run(self, work: Workload, mode: str) -> list[Result]:
        results: list[Result] = []

        def record(result: Result) -> None:
            results.append(result)
            print(f"  {result.engine}: {result.tokens_per_s:.1f} tok/s", flush=True)

        if "a" in self.selected:
            record(run_hf_static(self.hf_model, work, mode, self.args.static_batch))
        if "b" in self.selected:
            try:
                part = work.head(self.args.cb_requests)
                result = run_hf_continuous(self.hf_model, part, mode)
                suffix = f" [first {len(part.prompts)}]" if part is not work else ""
                record(replace(result, engine=result.engine + suffix))
            except Exception as e:  # an optional peer: report it and go on
                print(f"  (b) transformers continuous batching: failed ({type(e).__name__}: {e})")
        if self.runner is not None:
            record(run_hangar(self.runner, work, mode, self.args))
        if self.url is not None:
            record(run_grpc(self.url, work, mode))
        return results


if __name__ == "__main__":
    sys.exit(main())
