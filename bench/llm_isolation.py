"""The child processes of bench/engine_throughput.py: each engine alone, and vLLM under its own venv.

Engines share nothing then: in one process, transformers' continuous batching (b) left the next engine
~20% slower on 2 cores (measured: Hangar's (c) 509 tok/s alone, 414 right after (b) in the same process),
so figures depended on the order engines ran in. Each child rebuilds the same seeded model and workload,
warms its engine up, runs every mode and writes its results as JSON for the parent's report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from llm_workload import Latencies, Result, Workload

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).with_name("engine_throughput.py")
_OWN_FLAGS = ("--engines", "--json", "--results-out")


def child_argv(argv: list[str], engine: str, out: Path) -> list[str]:
    """The parent's arguments for one engine's child: its own --engines and --results-out, no --json."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _OWN_FLAGS:
            skip = True
            continue
        if arg.startswith(tuple(f + "=" for f in _OWN_FLAGS)):
            continue
        kept.append(arg)
    return [*kept, "--engines", engine, "--results-out", str(out)]


def run_children(argv: list[str], engines: list[str]) -> list[Result]:
    """Each engine in its own `python engine_throughput.py` child, in order; a failed child is reported
    and skipped, as a failed optional peer is."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hangar-bench-children-") as tmp:
        for engine in engines:
            out = Path(tmp, f"{engine}.json")
            print(f"  ({engine}): own process", flush=True)
            code = subprocess.run([sys.executable, str(SCRIPT), *child_argv(argv, engine, out)]).returncode
            if code != 0 or not out.exists():
                print(f"  ({engine}): its process failed (exit {code}); left out of the report")
                continue
            results += load_results(out)
    return results


def save_results(results: list[Result], path: Path) -> None:
    rows = [
        {
            "engine": r.engine,
            "mode": r.mode,
            "seconds": r.seconds,
            "tokens": r.tokens,
            "outputs": r.outputs,
            "latency": None if r.latency is None else [r.latency.ttft_ms, r.latency.itl_ms],
        }
        for r in results
    ]
    path.write_text(json.dumps(rows))


def load_results(path: Path) -> list[Result]:
    return [
        Result(
            row["engine"],
            row["mode"],
            row["seconds"],
            row["tokens"],
            row["outputs"],
            None if row["latency"] is None else Latencies(*row["latency"]),
        )
        for row in json.loads(path.read_text())
    ]


def vllm_env(args: argparse.Namespace) -> dict[str, str]:
    """The child's environment: none of our venv's paths; vLLM's 2-core settings (PERFORMANCE-TARGETS.md)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    cpus = sorted(os.sched_getaffinity(0))[: args.threads or None]
    # vLLM's default binding keeps a core for its scheduler: ~30% slower on 2 cores
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    return env


def run_vllm_peer(model_dir: Path, works: dict[str, Workload], args: argparse.Namespace) -> list[Result]:
    """(e): bench/llm_vllm.py under the vLLM venv's python, every mode in one child process.

    One process for all modes: vLLM's start (load, compile, a warm-up pass) takes minutes on 2 cores.
    It runs after the other engines, so nothing else of the bench competes for the cores.
    """
    spec = {
        m: {"prompts": w.prompts, "output_lens": w.output_lens, "arrivals": w.arrivals}
        for m, w in works.items()
    }
    print("  (e) vLLM: starting its own process (load, compile, warm-up: minutes)", flush=True)
    with tempfile.TemporaryDirectory(prefix="hangar-vllm-") as tmp:
        work_file, out_file, log_file = (Path(tmp, name) for name in ("work.json", "out.json", "vllm.log"))
        work_file.write_text(json.dumps(spec))
        cmd = [str(args.vllm_python), str(ROOT / "bench" / "llm_vllm.py"), str(model_dir), str(work_file)]
        cmd += [str(out_file), "--dtype", args.dtype, "--max-num-seqs", str(args.max_num_seqs)]
        cmd += ["--max-batched-tokens", str(args.max_batched_tokens), "--repeats", str(args.vllm_repeats)]
        try:
            with log_file.open("w") as log:
                run = subprocess.run(
                    cmd, stdout=log, stderr=log, env=vllm_env(args), cwd=tmp, timeout=args.vllm_timeout
                )
            code = run.returncode
        except subprocess.TimeoutExpired:
            code = -1
        if code != 0:  # an optional peer: report it and go on
            tail = "\n    ".join(log_file.read_text(errors="replace").splitlines()[-25:])
            print(f"  (e) vLLM: failed (exit {code}; log tail:)\n    {tail}")
            return []
        data = json.loads(out_file.read_text())
    results = []
    for r in data["results"]:
        latency = Latencies(r["ttft_ms"], r["itl_ms"]) if r["ttft_ms"] else None
        engine = f"(e) vLLM {data['version']} CPU build, offline"
        results.append(Result(engine, r["mode"], r["elapsed"], r["tokens"], r["outputs"], latency))
        passes = ", ".join(f"{x:.2f}" for x in r["elapsed_all"])
        print(f"  {engine} [{r['mode']}]: {results[-1].tokens_per_s:.1f} tok/s (passes: {passes} s)")
    return results
