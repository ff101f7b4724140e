"""Loading one model version: construct and load the backend off the loop, warm it, bound concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from server.backends.base import Backend, ModelVersionSpec
from server.errors import HangarError, LoadError
from server.repository.handle import ServedVersion
from server.repository.model_config import ModelConfig
from server.repository.warmup import run_warmup
from server.stats import ModelStats

log = logging.getLogger(__name__)


def _describe(e: BaseException) -> str:
    return e.message if isinstance(e, HangarError) else f"{type(e).__name__}: {e}"


def _unload_quietly(backend: Backend, what: str) -> None:
    try:
        backend.unload()
    except Exception:
        log.exception("unloading %s failed", what)


def _construct_and_load(cls: type[Backend], spec: ModelVersionSpec) -> Backend:
    backend = cls(spec)
    try:
        backend.load()
    except BaseException:
        # Partially started workers or threads must not outlive a failed load.
        _unload_quietly(backend, f"'{spec.name}' version {spec.version} after a failed load")
        raise
    return backend


def unload_served(served: ServedVersion) -> None:
    """Unload a drained instance and release what it held. Blocking: run it off the loop."""
    try:
        _unload_quietly(served.backend, f"'{served.name}' version {served.version}")
    finally:
        if served.on_unloaded is not None:
            served.on_unloaded()


def _unload_when_loaded(loading: asyncio.Future[Backend]) -> None:
    if loading.cancelled() or loading.exception() is not None:
        return
    backend = loading.result()
    what = f"'{backend.spec.name}' version {backend.spec.version} after a cancelled load"
    asyncio.get_running_loop().run_in_executor(None, _unload_quietly, backend, what)


class VersionLoader:
    """Loads versions with at most `thread_count` loads (load + warmup) running at once."""

    def __init__(self, thread_count: int) -> None:
        if thread_count < 1:
            raise ValueError(f"load_thread_count must be >= 1, got {thread_count}")
        self._slots = asyncio.Semaphore(thread_count)

    async def load(
        self,
        cls: type[Backend],
        config: ModelConfig,
        model_dir: Path,
        version: int,
        on_unloaded: Callable[[], None] | None = None,
    ) -> ServedVersion:
        """A loaded and warmed instance, ready to take requests.

        Raises:
            LoadError: the backend failed to load or warm up, or reported not ready; nothing is left loaded.
        """
        name = config.name
        try:  # per-model TTFT buckets (config.pbtxt model_metrics)
            stats = ModelStats.for_model_metrics(config.model_metrics)
        except HangarError as e:
            raise LoadError(f"failed to load '{name}' version {version}: {e}") from e
        spec = ModelVersionSpec(name, version, config, model_dir, model_dir / str(version), stats)
        async with self._slots:
            start = time.monotonic()
            loading = asyncio.ensure_future(asyncio.to_thread(_construct_and_load, cls, spec))
            try:
                backend = await asyncio.shield(loading)
            except asyncio.CancelledError:
                # The thread cannot be stopped: unload what it loads once it finishes.
                loading.add_done_callback(_unload_when_loaded)
                raise
            except Exception as e:
                raise LoadError(f"failed to load '{name}' version {version}: {_describe(e)}") from e
            try:
                await run_warmup(backend, config, model_dir, version)
                if not backend.ready:
                    raise LoadError("the backend reports it is not ready after loading")
            except BaseException as e:
                await asyncio.to_thread(_unload_quietly, backend, f"'{name}' version {version}")
                if isinstance(e, Exception):
                    raise LoadError(f"failed to load '{name}' version {version}: {_describe(e)}") from e
                raise
            duration = time.monotonic() - start
        log.info("loaded '%s' version %d in %.2fs", name, version, duration)
        return ServedVersion(name, version, config, backend, stats, duration, on_unloaded)
