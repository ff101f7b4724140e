"""Real Hangar servers for tests: in-process on its own event-loop thread, or as a `python -m server` process.

In-process (fast; the test talks gRPC to it on a free loopback port):

    with running_server(repo, model_control_mode="explicit", load_models=("m",)) as srv:
        client = tritonclient.grpc.InferenceServerClient(srv.url)
        srv.call(srv.manager.poll_once())         # run a coroutine on the server's loop

Subprocess (CLI flags, signals, exit codes):

    with server_process(["--model-repository", str(repo)]) as proc:
        ...; proc.send_signal(signal.SIGTERM); assert proc.wait() == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from server.app.lifecycle import manager_config
from server.app.server import HangarServer
from server.app.telemetry_port import Telemetry
from server.backends.base import BackendRegistry
from server.config import ServerConfig
from server.repository.manager import ModelManager

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
"""Generous: a loaded 2-core CI machine can take many seconds to import torch and load models."""
_LISTENING = re.compile(r"Started GRPCInferenceService at (\S+):(\d+)")


def wait_until(
    predicate: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """Polls `predicate` until it returns a truthy value (returned) or `timeout_s` passes (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what or predicate}")
        time.sleep(interval_s)


def make_config(repositories: Path | Sequence[Path], **overrides: Any) -> ServerConfig:
    """A ServerConfig for tests: loopback, a free port, no metrics port, a short exit timeout."""
    repos = (repositories,) if isinstance(repositories, Path) else tuple(repositories)
    base = ServerConfig(
        model_repositories=repos,
        grpc_address="127.0.0.1",
        grpc_port=0,
        allow_metrics=False,
        exit_timeout_secs=10.0,
    )
    return replace(base, **overrides)


class RunningServer:
    """A HangarServer running on a private event loop in a daemon thread."""

    def __init__(
        self, config: ServerConfig, registry: BackendRegistry | None, telemetry: Telemetry | None
    ) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hangar-test-server", daemon=True)
        self._thread.start()

        async def build() -> HangarServer:
            return HangarServer(config, ModelManager(manager_config(config), registry), telemetry)

        self.server: HangarServer = self.call(build())
        self._stopped = False

    @property
    def manager(self) -> ModelManager:
        return self.server.manager

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """`127.0.0.1:<port>`, what tritonclient's `url=` takes."""
        return f"127.0.0.1:{self.server.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = STARTUP_TIMEOUT_S) -> T:
        """Runs `coro` on the server's loop and returns its result (raises what it raises)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> RunningServer:
        self.call(self.server.start(), timeout_s)
        return self

    def stop(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Graceful stop (drain, unload), then the loop and its thread end. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.call(self.server.stop(), timeout_s)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
            if not self._thread.is_alive():
                self.loop.close()


def start_server(
    repositories: Path | Sequence[Path],
    *,
    registry: BackendRegistry | None = None,
    telemetry: Telemetry | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    **config_overrides: Any,
) -> RunningServer:
    """Starts a server (startup models loaded, port bound) and returns it; call `.stop()` when done.

    `config_overrides` are ServerConfig fields, e.g. model_control_mode="poll", repository_poll_secs=0.2.
    """
    srv = RunningServer(make_config(repositories, **config_overrides), registry, telemetry)
    try:
        return srv.start(startup_timeout_s)
    except BaseException:
        srv.stop()
        raise


@contextlib.contextmanager
def running_server(repositories: Path | Sequence[Path], **kwargs: Any) -> Iterator[RunningServer]:
    """`start_server` as a context manager that always stops the server."""
    srv = start_server(repositories, **kwargs)
    try:
        yield srv
    finally:
        srv.stop()


class ServerProcess:
    """`python -m server serve ...` in a child process; its output is collected for assertions."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "server", "serve", *args]
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.args, cwd=PROJECT_ROOT, env=child_env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self.port = 0
        self._reader = threading.Thread(target=self._read, name="hangar-server-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line)
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                self.port = int(match.group(2))
                self._listening.set()
        self._listening.set()  # the process ended: stop waiting for it

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_listening(self, timeout_s: float = STARTUP_TIMEOUT_S) -> ServerProcess:
        """Blocks until the server logs its gRPC address; AssertionError (with its output) otherwise."""
        self._listening.wait(timeout_s)
        if not self.port:
            code = self.proc.poll()
            state = f"exited with {code}" if code is not None else f"not listening after {timeout_s:.0f}s"
            raise AssertionError(f"hangar serve {state}; output:\n{self.output}")
        return self

    def send_signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
        """The exit code; kills the process (and fails) if it does not exit in time."""
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"hangar serve did not exit within {timeout_s:.0f}s; output:\n{self.output}"
            ) from None
        self._reader.join(timeout_s)
        return code

    def stop(self, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
        if self.proc.poll() is None:
            self.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)


def run_cli(args: Sequence[str], timeout_s: float = STARTUP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Runs `python -m server <args>` to completion (for flag errors and `--help`)."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def server_process(
    args: Sequence[str], *, env: dict[str, str] | None = None, startup_timeout_s: float = STARTUP_TIMEOUT_S
) -> Iterator[ServerProcess]:
    """Starts `hangar serve` on a free loopback port (metrics off unless `args` say otherwise), waits until
    it listens, and always stops it (SIGTERM, then kill) on exit."""
    defaults = ["--grpc-address", "127.0.0.1", "--grpc-port", "0"]
    if not any(a.startswith("--allow-metrics") for a in args):
        defaults += ["--allow-metrics", "false"]
    proc = ServerProcess([*defaults, *args], env)
    try:
        yield proc.wait_listening(startup_timeout_s)
    finally:
        if proc.proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.proc.wait(startup_timeout_s)
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait()
