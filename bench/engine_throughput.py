"""LLM engine throughput on one seeded workload, side by side in one run (PERFORMANCE-TARGETS.md).

    python bench/engine_throughput.py            # full workload, every engine
    python bench/engine_throughput.py --quick    # a small smoke-test workload

Engines: (a) transformers `generate`, static batches of 16, left-padded, each batch runs to its longest
request; (b) transformers' continuous batching manager (the engine behind `generate_batch`); (c) Hangar's
engine offline (EngineLoop + PyTorchModelRunner, in process); (d) Hangar over gRPC (`hangar serve`);
(e) vLLM's CPU build offline, in its own venv (bench/llm_vllm.py as a child process, after the others).
Every request runs its full length (min_tokens = max_tokens), so useful output tokens are known upfront.
Each engine runs the workload all at once and again with Poisson arrivals; figures are useful output
tokens per second, and ratios are against (a) in the same arrival mode. Engines (a)-(d) each run in a
fresh child process, one after another (bench/llm_isolation.py: in one process an engine slowed the next
one down); `--same-process` runs them in this one. (e), vLLM's CPU build, runs in its own venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from llm_isolation import run_children, run_vllm_peer, save_results  # noqa: E402
from llm_ours import grpc_server, load_runner, run_grpc, run_hangar  # noqa: E402
from llm_peers import run_hf_continuous, run_hf_static  # noqa: E402
from llm_workload import Result, Workload, build_model, machine, make_workload  # noqa: E402

from server.backends.pytorch.runner import PyTorchModelRunner  # noqa: E402


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
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU figures (engines a, c, d)")
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
        "--engines",
        default=None,
        help="comma-separated subset of a,b,c,d,e (default: all, e if --vllm-python exists; --quick: a,c,d)",
    )
    p.add_argument(
        "--vllm-python",
        type=Path,
        default=Path.home() / "venv-vllm" / "bin" / "python",
        help="python of the venv holding vLLM's CPU build, for (e)",
    )
    p.add_argument("--repeats", type=int, default=1, help="timed passes of (a)-(d) per mode (median)")
    p.add_argument("--vllm-repeats", type=int, default=1, help="timed passes of (e) per mode (median)")
    p.add_argument("--vllm-timeout", type=float, default=3600.0, help="seconds for the whole (e) run")
    p.add_argument("--modes", default="all-at-once,poisson", help="comma-separated subset")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--same-process",
        action="store_true",
        help="run engines a-d in this process (default: each in a fresh child process, one after another)",
    )
    p.add_argument("--results-out", type=Path, help=argparse.SUPPRESS)  # a child's results, for its parent
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.max_prompt, args.max_output, args.min_output = 8, 48, 24, 4
        args.hidden, args.intermediate, args.layers, args.heads, args.kv_heads = 64, 128, 2, 4, 2
        args.arrival_rate = 50.0
    if args.engines is None:
        # transformers' continuous batching needs tens of seconds even for a toy run on CPU
        args.engines = "a,c,d" if args.quick else "a,b,c,d" + (",e" if args.vllm_python.exists() else "")
    if "e" in args.engines.split(","):
        if not args.vllm_python.exists():
            p.error(
                f"--vllm-python {args.vllm_python} does not exist: (e) needs vLLM's CPU build in its own "
                "venv (docs/PERFORMANCE.md, 'vLLM peer')"
            )
        if args.quick:  # vLLM's CPU attention needs a head size of at least 32
            args.heads, args.kv_heads = 2, 1
    return args


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\n{'engine':52} {'mode':12} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'vs (a)':>7}")
    for r in results:
        base = next((b for b in results if b.engine.startswith("(a)") and b.mode == r.mode), None)
        ratio = f"{r.tokens_per_s / base.tokens_per_s:6.2f}x" if base else "    n/a"
        print(f"{r.engine:52} {r.mode:12} {r.tokens:7d} {r.seconds:8.2f} {r.tokens_per_s:8.1f} {ratio}")
    for mode in dict.fromkeys(r.mode for r in results):
        ours, vllm = (find(results, label, mode) for label in ("(c)", "(e)"))
        if ours is not None and vllm is not None:
            print(f"(c)/(e) [{mode}]: {ours.tokens_per_s / vllm.tokens_per_s:.2f}x (Hangar's engine vs vLLM)")
    timed = [r for r in results if r.latency is not None]
    if timed:
        head = f"{'TTFT p50':>9} {'p99':>8} {'ITL p50':>8} {'p99':>8}"
        print(f"\n{'per-request latency, ms':52} {'mode':12} {head}")
        for r in timed:
            assert r.latency is not None
            s = r.latency.summary()
            print(
                f"{r.engine:52} {r.mode:12} {s['ttft_p50_ms']:9.1f} {s['ttft_p99_ms']:8.1f} "
                f"{s['itl_p50_ms']:8.1f} {s['itl_p99_ms']:8.1f}"
            )
    if args.json:
        rows = [
            {
                "engine": r.engine,
                "mode": r.mode,
                "tokens": r.tokens,
                "seconds": r.seconds,
                "tokens_per_s": r.tokens_per_s,
            }
            | (r.latency.summary() if r.latency is not None else {})
            for r in results
        ]
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "results": rows,
                },
                indent=2,
            )
        )


def find(results: list[Result], label: str, mode: str) -> Result | None:
    return next((r for r in results if r.engine.startswith(label) and r.mode == mode), None)


def check_agreement(results: list[Result]) -> None:
    """Greedy engines must agree token for token with transformers' static batches where both ran.

    vLLM (e) is checked against Hangar's engine (c) too; it may diverge on a float32 random model (its
    kernels round differently), which is reported, not failed.
    """
    for r in results:
        for label in ("(a)", "(c)") if r.engine.startswith("(e)") else ("(a)",):
            ref = find(results, label, r.mode)
            if ref is None or r is ref or r.outputs is None or ref.outputs is None:
                continue
            same = sum(a == b for a, b in zip(r.outputs, ref.outputs, strict=False))
            print(f"{r.engine} [{r.mode}]: {same}/{len(r.outputs)} requests identical to {label}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    here = [e for e in "abcd" if e in args.engines.split(",")]
    isolate = not args.same_process and args.results_out is None and len(here) > 1
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        model_dir = build_model(Path(tmp), args)
        vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
        modes = args.modes.split(",")
        works = {mode: make_workload(args, vocab, poisson=mode == "poisson") for mode in modes}
        if isolate:
            print(f"machine: {machine()}")
            results = run_children(argv, here)
        else:
            results = run_here(model_dir, works, args)
        if args.results_out is not None:
            save_results(results, args.results_out)
            return 0
        if "e" in args.engines.split(","):
            results += run_vllm_peer(model_dir, works, args)
    results.sort(key=lambda r: modes.index(r.mode))  # stable: (e) joins its mode's rows
    report(results, args)
    check_agreement(results)
    return 0


def run_here(model_dir: Path, works: dict[str, Workload], args: argparse.Namespace) -> list[Result]:
    """Engines a-d of `args.engines` in this process, one after the other, every mode."""
    import transformers

    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=getattr(torch, args.dtype)
        ).to(args.device)
        hf_model.eval()
        params = sum(p.numel() for p in hf_model.parameters()) / 1e6
        print(f"machine: {machine()}")
        if args.device.startswith("cuda"):
            print(f"gpu: {torch.cuda.get_device_name(torch.device(args.device))}, torch {torch.__version__}")
        threads = torch.get_num_threads()
        print(f"model: Llama {params:.1f}M parameters, vocab {hf_model.config.vocab_size}, {args.dtype}, "
              f"{args.device}, {threads} torch threads")  # fmt: skip
        first = next(iter(works.values()))
        engines = Engines(hf_model, first, args)
        if "c" in args.engines:
            engines.runner = load_runner(model_dir, first, args)
        if "d" in args.engines:
            engines.url = stack.enter_context(grpc_server(model_dir, first, args))
        engines.warm_up(first)
        for mode, work in works.items():
            print(
                f"[{mode}] {len(work.prompts)} requests, {work.useful_tokens} useful output tokens, "
                f"prompts {statistics.mean(len(p) for p in work.prompts):.0f} tokens on average"
            )
            results += engines.run(work, mode)
    return results


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
        """Every selected engine on `work`, each `--repeats` times; the median pass is its result."""
        results: list[Result] = []
        runs: list[tuple[str, Callable[[], Result]]] = []
        if "a" in self.selected:
            runs.append(("(a)", lambda: run_hf_static(self.hf_model, work, mode, self.args.static_batch)))
        if "b" in self.selected:
            part = work.head(self.args.cb_requests)
            suffix = f" [first {len(part.prompts)}]" if part is not work else ""

            def run_b() -> Result:
                result = run_hf_continuous(self.hf_model, part, mode)
                return replace(result, engine=result.engine + suffix)

            runs.append(("(b)", run_b))
        runner, url = self.runner, self.url
        if runner is not None:
            runs.append(("(c)", lambda: run_hangar(runner, work, mode, self.args)))
        if url is not None:
            runs.append(("(d)", lambda: run_grpc(url, work, mode)))
        for label, run_once in runs:
            try:
                passes = [run_once() for _ in range(self.args.repeats)]
            except Exception as e:  # a peer failing is reported; the run goes on
                print(f"  {label}: failed ({type(e).__name__}: {e})")
                continue
            passes.sort(key=lambda r: r.seconds)
            results.append(passes[len(passes) // 2])
            times = ", ".join(f"{r.seconds:.2f}" for r in passes)
            best = results[-1]
            print(f"  {best.engine}: {best.tokens_per_s:.1f} tok/s (passes: {times} s)", flush=True)
        return results


if __name__ == "__main__":
    sys.exit(main())
