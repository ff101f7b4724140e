"""gRPC overhead: Hangar's ModelInfer against a bare grpc.aio server doing the same add/sub in numpy.

Both servers run as child processes; one `tritonclient.grpc.aio` client drives each in turn, in the same run,
at concurrency 1 and 16. Prints throughput, p50/p99 latency, server CPU time per inference and Hangar's
throughput as a ratio of the bare server's (target: >= 0.8 at concurrency 16; see docs/PERFORMANCE.md).

Models: `add_sub` (Python backend) and `add_sub_onnx` (onnxruntime) from model_repo/, and `inline`: the
same add/sub computed on the event loop by a bench-only backend, which isolates the app's own overhead
(transport, decode, validation, stats) from the backends' worker threads.

    python bench/grpc_overhead.py [--quick] [--models add_sub,add_sub_onnx,inline] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"(?:Started GRPCInferenceService|bare server listening) at \S+:(\d+)")
SHAPE = (1, 16)


# -- the bare server (runs in a child process) ------------------------------------------------------


async def _serve_bare() -> None:
    import grpc

    from server.protocol.gen import grpc_service_pb2 as pb
    from server.protocol.gen import grpc_service_pb2_grpc as service_grpc

    class Bare(service_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request: pb.ModelInferRequest, context: object) -> pb.ModelInferResponse:
            a = np.frombuffer(request.raw_input_contents[0], dtype=np.float32)
            b = np.frombuffer(request.raw_input_contents[1], dtype=np.float32)
            shape = list(request.inputs[0].shape)
            response = pb.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
            for name, value in (("OUTPUT0", a + b), ("OUTPUT1", a - b)):
                response.outputs.add(name=name, datatype="FP32", shape=shape)
                response.raw_output_contents.append(value.tobytes())
            return response

    server = grpc.aio.server(
        options=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]
    )
    service_grpc.add_GRPCInferenceServiceServicer_to_server(Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"bare server listening at 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


# -- Hangar with an in-loop backend (runs in a child process) ------------------------------------------


INLINE_CONFIG = """
name: "inline"
backend: "bench_inline"
max_batch_size: 8
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 16 ] },
        { name: "INPUT1", data_type: TYPE_FP32, dims: [ 16 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 16 ] },
         { name: "OUTPUT1", data_type: TYPE_FP32, dims: [ 16 ] } ]
"""


async def _serve_inline() -> None:
    from collections.abc import AsyncIterator

    from server.app.lifecycle import configure_logging, create_telemetry, manager_config
    from server.app.server import HangarServer
    from server.backends.base import Backend, BackendRegistry
    from server.config import ServerConfig
    from server.repository.manager import ModelManager
    from server.types import InferRequest, InferResponse, Tensor

    class InlineAddSub(Backend):
        def load(self) -> None:
            pass

        async def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
            a, b = request.inputs["INPUT0"], request.inputs["INPUT1"]
            outputs = [
                Tensor("OUTPUT0", a.datatype, a.data + b.data),
                Tensor("OUTPUT1", a.datatype, a.data - b.data),
            ]
            yield InferResponse(request.model_name, request.model_version, request.id, outputs=outputs)

    repo = Path(tempfile.mkdtemp(prefix="hangar-bench-"))
    (repo / "inline" / "1").mkdir(parents=True)
    (repo / "inline" / "config.pbtxt").write_text(INLINE_CONFIG)
    registry = BackendRegistry()
    registry.register("bench_inline", InlineAddSub)
    config = ServerConfig(
        model_repositories=(repo,), grpc_address="127.0.0.1", grpc_port=0, allow_metrics=False
    )
    configure_logging(config)
    server = HangarServer(config, ModelManager(manager_config(config), registry), create_telemetry(config))
    await server.start()
    await server.wait_for_termination()


# -- child processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    url: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def child_server(
    args: list[str], timeout_s: float = 180.0, cpus: set[int] | None = None
) -> Iterator[Child]:
    """Starts a server process (on `cpus` only, if given) and yields its address and pid once it logs
    that it listens."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=pin,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout_s
        assert proc.stdout is not None
        port = None
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = _LISTENING.search(line)
            port = match.group(1) if match else None
        if port is None:
            raise RuntimeError(f"server did not start: {' '.join(args)}\n{''.join(lines)}")
        # Keep draining its output so the child never blocks on a full pipe.
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        yield Child(f"127.0.0.1:{port}", proc.pid)
        drain.kill()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def hangar_args(repo: Path, models: list[str]) -> list[str]:
    loads = [a for m in models for a in ("--load-model", m)]
    return [
        sys.executable, "-m", "server", "serve", "--model-repository", str(repo),
        "--model-control-mode", "explicit", *loads, "--grpc-address", "127.0.0.1", "--grpc-port", "0",
        "--allow-metrics", "false",
    ]  # fmt: skip


# -- the client --------------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    model: str
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    """Server CPU time per inference (all threads): steadier than throughput on a shared machine."""


async def drive(
    server: Child, model: str, concurrency: int, duration_s: float, warmup_s: float
) -> tuple[float, list[float], float]:
    import tritonclient.grpc.aio as aioclient
    from tritonclient.grpc import InferInput

    client = aioclient.InferenceServerClient(server.url)
    a = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    inputs = [InferInput("INPUT0", list(SHAPE), "FP32"), InferInput("INPUT1", list(SHAPE), "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    latencies: list[float] = []
    measuring = False

    async def worker(stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await client.infer(model, inputs)
            if measuring:
                latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(worker(time.perf_counter() + warmup_s) for _ in range(concurrency)))
        measuring = True
        cpu0, start = cpu_seconds(server.pid), time.perf_counter()
        await asyncio.gather(*(worker(start + duration_s) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(server.pid) - cpu0
    finally:
        await client.close()
    return len(latencies) / elapsed, latencies, cpu / max(1, len(latencies))


def measure(
    name: str, server: Child, model: str, concurrency: int, duration_s: float, warmup_s: float
) -> Result:
    throughput, lat, cpu = asyncio.run(drive(server, model, concurrency, duration_s, warmup_s))
    lat_ms = sorted(x * 1000 for x in lat)
    p99 = lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))]
    return Result(name, model, concurrency, throughput, statistics.median(lat_ms), p99, cpu * 1e6)


# -- the run -----------------------------------------------------------------------------------------


def available_models(repo: Path, wanted: list[str]) -> list[str]:
    out = []
    for m in wanted:
        if m == "add_sub_onnx" and not list((repo / m).glob("[0-9]*/model.onnx")):
            print(
                f"skipping {m}: no model.onnx (build it: python -m builders.onnx_example --repository {repo})"
            )
            continue
        out.append(m)
    return out


def run(args: argparse.Namespace) -> list[Result]:
    duration, warmup = (2.0, 0.5) if args.quick else (8.0, 2.0)
    rounds = 1 if args.quick else args.rounds
    repo = Path(args.repository).resolve()
    models = available_models(repo, args.models.split(","))
    levels = [int(c) for c in args.concurrency.split(",")]
    samples: dict[tuple[str, str, int], list[Result]] = {}
    repo_models = [m for m in models if m != "inline"]
    servers, client = pinning(args.pin)
    with (
        child_server(
            [sys.executable, __file__, "--bare-server", "--bare-loop", args.bare_loop], cpus=servers
        ) as bare,
        child_server(hangar_args(repo, repo_models), cpus=servers) as hangar,
        child_server([sys.executable, __file__, "--inline-server"], cpus=servers) as inline,
    ):
        if client:
            os.sched_setaffinity(0, client)
            print(f"pinned: servers on CPUs {sorted(servers or ())}, client on CPUs {sorted(client)}")
        for _ in range(rounds):  # alternate servers so drift in machine load hits both alike
            for model in models:
                for c in levels:
                    server_under_test = inline if model == "inline" else hangar
                    for name, server, target in (
                        ("bare", bare, "add_sub"),
                        ("hangar", server_under_test, model),
                    ):
                        r = measure(name, server, target, c, duration, warmup)
                        r.model = model
                        samples.setdefault((name, model, c), []).append(r)
    return [_median(v) for v in samples.values()]


def pinning(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): with --pin, the last CPU for the servers and the rest for the client,
    so the client never takes the server's core and a server's throughput is bound by its own cost."""
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    return {cpus[-1]}, set(cpus[:-1])


def _median(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.throughput)[len(results) // 2]


def report(results: list[Result]) -> None:
    by = {(r.server, r.model, r.concurrency): r for r in results}
    print(f"\n{'model':<14}{'conc':>5}{'bare inf/s':>12}{'hangar inf/s':>14}{'ratio':>7}"
          f"{'bare p50/p99 ms':>18}{'hangar p50/p99 ms':>20}{'CPU us/inf bare/hangar':>25}")  # fmt: skip
    for (server, model, c), h in sorted(by.items()):
        if server != "hangar":
            continue
        b = by[("bare", model, c)]
        print(
            f"{model:<14}{c:>5}{b.throughput:>12.0f}{h.throughput:>14.0f}{h.throughput / b.throughput:>7.2f}"
            f"{f'{b.p50_ms:.2f}/{b.p99_ms:.2f}':>18}{f'{h.p50_ms:.2f}/{h.p99_ms:.2f}':>20}"
            f"{f'{b.cpu_us:.0f}/{h.cpu_us:.0f}':>25}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (about 20 s in all)")
    parser.add_argument("--repository", default=str(ROOT / "model_repo"))
    parser.add_argument("--models", default="add_sub,add_sub_onnx,inline")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3, help="repeats per point; the median is reported")
    parser.add_argument(
        "--bare-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the bare server's event loop (Hangar runs on its default, --event-loop auto: uvloop)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on the last CPU, the client on the others (Linux): steadier on a small machine",
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inline-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server or args.inline_server:
        sys.path.insert(0, str(ROOT))
        from server.app.event_loop import loop_runner

        # the in-loop Hangar server runs on Hangar's default loop, the bare one on --bare-loop
        loop_runner(args.bare_loop if args.bare_server else "auto")(
            _serve_bare() if args.bare_server else _serve_inline()
        )
        return 0
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, tempdir {tempfile.gettempdir()}")
    print(f"bare server on {args.bare_loop}; Hangar on its default event loop (--event-loop auto)")
    report(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
