"""`hangar serve` from start to exit: logging, telemetry, models, gRPC, a bounded stop on SIGTERM/SIGINT.

The first signal drains (in-flight requests finish, models unload) within --exit-timeout-secs; a second
one cancels what is still in flight and exits at once with code 1, as tritonserver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from server.app.event_loop import loop_name, loop_runner
from server.app.server import HangarServer
from server.app.telemetry_port import Telemetry
from server.config import ServerConfig
from server.errors import ConfigError, HangarError
from server.repository.manager import ControlMode, ManagerConfig, ModelManager

log = logging.getLogger("hangar")
_TELEMETRY = "server.telemetry"
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
ABORT_WAIT_S = 5.0
"""After a second signal: how long the cancelled RPCs get to send their status before the exit."""


@dataclass(frozen=True)
class ServeResult:
    code: int
    """The process exit code."""
    abandoned: bool = False
    """Work (an execute, an unload) is still running on some thread: exit without waiting for it."""


def manager_config(config: ServerConfig) -> ManagerConfig:
    """The repository manager's view of the server flags."""
    return ManagerConfig(
        repositories=config.model_repositories,
        control_mode=ControlMode[config.model_control_mode.upper()],
        startup_models=config.load_models,
        poll_interval_s=config.repository_poll_secs,
        strict_readiness=config.strict_readiness,
        load_thread_count=config.model_load_thread_count,
    )


def _telemetry_entry(name: str) -> Any | None:
    """A function of the telemetry layer, or None while it does not provide one."""
    if importlib.util.find_spec(_TELEMETRY) is None:
        return None
    return getattr(importlib.import_module(_TELEMETRY), name, None)


def configure_logging(config: ServerConfig) -> None:
    setup = _telemetry_entry("configure_logging")
    if setup is not None:
        setup(config)
        return
    level = logging.DEBUG if config.log_verbose else logging.INFO if config.log_info else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def create_telemetry(config: ServerConfig) -> Telemetry | None:
    factory = _telemetry_entry("create_telemetry")
    return None if factory is None else factory(config)


class _Signals:
    """SIGTERM/SIGINT: the first asks for a graceful stop, the next one for an immediate exit."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def received(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            log.info("%s received: stopping (finishing in-flight requests first)", sig.name)
            self.stop.set()
        elif not self.force.is_set():
            log.warning(
                "%s received again: cancelling in-flight requests and exiting now (exit code 1)", sig.name
            )
            self.force.set()


def serve(config: ServerConfig) -> int:
    """Run `hangar serve` to its exit code. When shutdown had to leave work running on other threads
    (a second signal, an unload past --exit-timeout-secs), exit the process at once instead of joining
    them: a blocked execute or finalize must not keep the process alive."""

    async def run() -> int:
        result = await run_server(config)
        if result.abandoned:
            _exit_now(result.code)
        return result.code

    try:
        runner = loop_runner(config.event_loop)
    except ConfigError as e:
        print(f"hangar serve: {e}", file=sys.stderr)
        return 2
    return int(runner(run()))


def _exit_now(code: int) -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


async def run_server(config: ServerConfig) -> ServeResult:
    """Serve until SIGTERM or SIGINT, then drain and stop; returns the exit code (and whether work was
    abandoned). A second signal while stopping cancels what is in flight and returns code 1 at once."""
    try:
        configure_logging(config)
    except (HangarError, OSError) as e:
        # Logging is not set up: say it on stderr, naming the flag and the path.
        print(f"hangar serve: cannot log to --log-file '{config.log_file}': {e}", file=sys.stderr)
        return ServeResult(1)
    log.info("event loop: %s (--event-loop %s)", loop_name(), config.event_loop)
    signals = _Signals()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, signals.received, sig)
    server: HangarServer | None = None
    try:
        server = HangarServer(config, ModelManager(manager_config(config)), create_telemetry(config))
        return await _serve_until_stopped(server, signals)
    except (HangarError, OSError, RuntimeError) as e:
        log.error("hangar serve failed: %s", e)
        return ServeResult(1, abandoned=server is not None and not server.unloads_finished)
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


async def _serve_until_stopped(server: HangarServer, signals: _Signals) -> ServeResult:
    starting = asyncio.create_task(server.start())
    waiting = asyncio.create_task(signals.stop.wait())
    await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        waiting.cancel()
        starting.result()  # a failed start (port in use, bad repository) raises here
        _freeze_startup_heap()
        await signals.stop.wait()
    else:
        log.info("signal received while starting: abandoning startup")
        starting.cancel()
    stopping = asyncio.create_task(_stop(server, starting))
    forced = asyncio.create_task(signals.force.wait())
    try:
        await asyncio.wait({stopping, forced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if stopping.done():
        clean = stopping.result()
        log.info("hangar stopped" if clean else "hangar stopped, leaving unfinished unloads behind")
        return ServeResult(0 if clean else 1, abandoned=not clean)
    await server.abort(ABORT_WAIT_S)
    stopping.cancel()
    await asyncio.wait({stopping}, timeout=ABORT_WAIT_S)  # bounded: the process exits regardless
    log.warning("hangar exiting on a second signal (exit code 1)")
    return ServeResult(1, abandoned=True)


async def _stop(server: HangarServer, starting: asyncio.Task[None]) -> bool:
    """The graceful stop; True when every model unloaded within --exit-timeout-secs."""
    await asyncio.gather(starting, return_exceptions=True)  # an abandoned start unloads what it loaded
    return await server.stop()


def _freeze_startup_heap() -> None:
    """Exempt what startup built (modules, models, configs) from cyclic GC: it lives until exit anyway.

    Without this every gen-2 pass walks the whole heap (~40 ms with torch imported), a stall for every
    request in flight; frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    log.debug("froze %d startup objects out of cyclic garbage collection", gc.get_freeze_count())
