"""(e) vLLM's CPU build on the bench workload; run by the vLLM venv's python, not the project's.

    $HOME/venv-vllm/bin/python bench/llm_vllm.py MODEL_DIR WORKLOAD.json RESULT.json [--repeats N]

bench/engine_throughput.py starts this as a child process (vLLM lives in its own virtual environment,
PERFORMANCE-TARGETS.md), so it imports nothing from the project. WORKLOAD.json maps each arrival mode to
{"prompts": [[token ids]], "output_lens": [n], "arrivals": [seconds]}; RESULT.json gets, per mode, the
median elapsed seconds over the repeats, the useful output tokens and the greedy outputs of that run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# vLLM reads these at import; its defaults reserve a core for the scheduler (~30% slower on 2 cores)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0)))))

from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt


@dataclass
class Run:
    """One timed pass over a workload: seconds, greedy outputs and (engine-stepped runs) latencies."""

    elapsed: float
    outputs: list[list[int]]
    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)


def params(n: int) -> SamplingParams:
    # every request runs its full length, as for the other engines
    return SamplingParams(max_tokens=n, min_tokens=n, temperature=0.0, ignore_eos=True)


def run_all_at_once(llm: LLM, work: dict[str, Any]) -> Run:
    """Everything in one `generate` call, the way vLLM's offline API is meant to be used."""
    prompts = [TokensPrompt(prompt_token_ids=p) for p in work["prompts"]]
    sampling = [params(n) for n in work["output_lens"]]
    start = time.perf_counter()
    outs = llm.generate(prompts, sampling, use_tqdm=False)
    elapsed = time.perf_counter() - start
    return Run(elapsed, [list(o.outputs[0].token_ids) for o in outs])


def run_arrivals(llm: LLM, work: dict[str, Any]) -> Run:
    """Requests added to the engine at their arrival times between engine steps (Poisson mode)."""
    engine = llm.llm_engine
    prompts, lens, arrivals = work["prompts"], work["output_lens"], work["arrivals"]
    outputs: list[list[int]] = [[] for _ in prompts]
    sent, seen, last = [0.0] * len(prompts), [0] * len(prompts), [0.0] * len(prompts)
    ttft, itl = [], []
    index: dict[str, int] = {}
    start, nxt = time.perf_counter(), 0
    while nxt < len(prompts) or engine.has_unfinished_requests():
        now = time.perf_counter()
        while nxt < len(prompts) and start + arrivals[nxt] <= now:
            sent[nxt] = time.perf_counter()
            rid = engine.add_request(
                f"r{nxt}", TokensPrompt(prompt_token_ids=prompts[nxt]), params(lens[nxt])
            )
            index[rid] = index[f"r{nxt}"] = nxt
            nxt += 1
        if not engine.has_unfinished_requests():
            time.sleep(max(0.0, start + arrivals[nxt] - time.perf_counter()))
            continue
        for out in engine.step():
            i, tokens, t = index[out.request_id], out.outputs[0].token_ids, time.perf_counter()
            if len(tokens) > seen[i]:  # a step that produced tokens for this request
                (itl if seen[i] else ttft).append((t - (last[i] if seen[i] else sent[i])) * 1e3)
                seen[i], last[i] = len(tokens), t
            if out.finished:
                outputs[i] = list(tokens)
    return Run(time.perf_counter() - start, outputs, ttft, itl)


def median_run(runs: list[Run]) -> Run:
    """The run at the median elapsed time (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.elapsed)
    return ordered[(len(ordered) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("workload", type=Path)
    p.add_argument("result", type=Path)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--max-batched-tokens", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=1, help="timed passes per mode; the median is reported")
    args = p.parse_args(argv)
    modes: dict[str, dict[str, Any]] = json.loads(args.workload.read_text())
    import vllm

    llm = LLM(
        model=str(args.model),
        dtype=args.dtype,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_batched_tokens,
        enable_prefix_caching=False,  # the repeats would otherwise reuse each other's prompts
    )
    first = next(iter(modes.values()))
    # the first pass compiles; it is not part of any figure
    run_all_at_once(llm, {"prompts": [first["prompts"][0][:16]], "output_lens": [4]})
    results = []
    for mode, work in modes.items():
        run = run_all_at_once if not any(work["arrivals"]) else run_arrivals
        runs = [run(llm, work) for _ in range(max(1, args.repeats))]
        best = median_run(runs)
        elapsed = statistics.median(r.elapsed for r in runs)
        tokens = sum(work["output_lens"])
        print(f"  (e) vLLM [{mode}]: {tokens / elapsed:.1f} tok/s", file=sys.stderr, flush=True)
        results.append(
            {
                "mode": mode,
                "elapsed": elapsed,
                "elapsed_all": [r.elapsed for r in runs],
                "tokens": tokens,
                "outputs": best.outputs,
                "ttft_ms": best.ttft_ms,
                "itl_ms": best.itl_ms,
            }
        )
    args.result.write_text(json.dumps({"version": vllm.__version__, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
