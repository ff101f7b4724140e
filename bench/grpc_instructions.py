"""Server instructions per ModelInfer under valgrind's callgrind: Hangar against the bare grpc.aio server.

bench/grpc_overhead.py's throughput ratio moves by +-10% between runs on a shared 2-core machine; the
number of instructions a server executes per request does not (within ~1% between runs). Each server runs
under `valgrind --tool=callgrind` with instrumentation off until it listens and has answered a warm-up;
then `--requests` ModelInfer calls at concurrency 16 from one tritonclient.grpc.aio client are counted
(all the server's threads: Python, the gRPC core, numpy, onnxruntime) and divided by the request count.
Instructions are not time (cache misses and GIL hand-offs cost time without instructions), so this
complements the throughput bench; it does not replace it.

    python bench/grpc_instructions.py [--models add_sub,add_sub_onnx] [--requests 2000]

Needs valgrind (Debian: `apt install valgrind`); about 2 minutes per model.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from grpc_overhead import ROOT, SHAPE, child_server, hangar_args

_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


async def send(url: str, model: str, requests: int, concurrency: int = 16) -> None:
    import tritonclient.grpc.aio as aioclient
    from tritonclient.grpc import InferInput

    client = aioclient.InferenceServerClient(url)
    a = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    inputs = [InferInput("INPUT0", list(SHAPE), "FP32"), InferInput("INPUT1", list(SHAPE), "FP32")]
    for i in inputs:
        i.set_data_from_numpy(a)
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.infer(model, inputs)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.close()


def instructions_per_request(server_args: list[str], model: str, requests: int, out: Path) -> float:
    """Runs `server_args` under callgrind; counts only what `requests` ModelInfer calls cost it."""
    dump = out / f"callgrind.{model}.{len(list(out.iterdir()))}"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={dump}"]
    with child_server(valgrind + server_args, timeout_s=600) as server:
        asyncio.run(send(server.url, model, 200))  # warm-up, not counted
        control = ["callgrind_control"]
        subprocess.run([*control, "--instr=on", str(server.pid)], check=True, capture_output=True)
        asyncio.run(send(server.url, model, requests))
        subprocess.run([*control, "--dump", str(server.pid)], check=True, capture_output=True)
        subprocess.run([*control, "--instr=off", str(server.pid)], check=True, capture_output=True)
    dumps = [dump, *out.glob(f"{dump.name}.*")]  # the requested dump is <file>.1, the exit one <file>
    counted = [int(m.group(1)) for f in dumps if f.exists() for m in _TOTALS.finditer(f.read_text())]
    if not counted or max(counted) == 0:
        raise RuntimeError(f"callgrind counted nothing for {model} (dumps: {sorted(out.iterdir())})")
    return max(counted) / requests


def serve_hangar_under_valgrind(argv: list[str]) -> int:
    """`hangar serve argv`, with the inline gate's time limits raised a thousandfold.

    Under valgrind every execute runs tens of times slower, so the gate (server/scheduling/inline_gate.py)
    would judge the model too slow to run on the event loop and count the worker-thread path instead of
    the one the server takes natively.
    """
    from server.app.main import main as hangar_main
    from server.scheduling import inline_gate

    init = inline_gate.InlineGate.__init__
    warmup, *limits = init.__defaults__ or ()
    init.__defaults__ = (warmup, *(1000 * limit for limit in limits))
    return hangar_main(["serve", *argv])


def main() -> int:
    if sys.argv[1:2] == ["--serve-hangar"]:
        return serve_hangar_under_valgrind(sys.argv[2:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", default=str(ROOT / "model_repo"))
    parser.add_argument("--models", default="add_sub,add_sub_onnx")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    repo = Path(args.repository).resolve()
    bench = str(Path(__file__).with_name("grpc_overhead.py"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        bare = instructions_per_request(
            [sys.executable, bench, "--bare-server", "--bare-loop", "uvloop"], "add_sub", args.requests, out
        )
        print(f"{'model':<14}{'bare instr/req':>16}{'hangar instr/req':>18}{'ratio bare/hangar':>19}")
        for model in args.models.split(","):
            serve = [sys.executable, __file__, "--serve-hangar", *hangar_args(repo, [model])[4:]]
            ours = instructions_per_request(serve, model, args.requests, out)
            print(f"{model:<14}{bare:>16,.0f}{ours:>18,.0f}{bare / ours:>19.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
