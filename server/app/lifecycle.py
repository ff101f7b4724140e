"""`hangar serve` from start to exit: logging, telemetry, models, gRPC, a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import logging
import signal
from typing import Any

from server.app.server import HangarServer
from server.app.telemetry_port import Telemetry
from server.config import ServerConfig
from server.errors import HangarError
from server.repository.manager import ControlMode, ManagerConfig, ModelManager

log = logging.getLogger("hangar")
_TELEMETRY = "server.telemetry"


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


async def run_server(config: ServerConfig) -> int:
    """Serve until SIGTERM or SIGINT, then drain and exit; returns the process exit code."""
    configure_logging(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    try:
        server = HangarServer(config, ModelManager(manager_config(config)), create_telemetry(config))
        starting = asyncio.create_task(server.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start (port in use, bad repository) raises here
            _freeze_startup_heap()
            await stopping
        else:
            log.info("signal received while starting: abandoning startup")
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await server.stop()
    except (HangarError, OSError, RuntimeError) as e:
        log.error("hangar serve failed: %s", e)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("hangar stopped")
    return 0


def _freeze_startup_heap() -> None:
    """Exempt what startup built (modules, models, configs) from cyclic GC: it lives until exit anyway.

    Without this every gen-2 pass walks the whole heap (~40 ms with torch imported), a stall for every
    request in flight; frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    log.debug("froze %d startup objects out of cyclic garbage collection", gc.get_freeze_count())


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    if stop.is_set():
        log.warning("%s received again: still shutting down", sig.name)
        return
    log.info("%s received: stopping (finishing in-flight requests first)", sig.name)
    stop.set()
