"""Applying a load plan to a model: load new instances, swap them in, then drain and unload the old ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.backends.base import Backend
from server.errors import HangarError
from server.repository.handle import ServedVersion
from server.repository.layout import Fingerprint
from server.repository.load_overrides import OverrideDir
from server.repository.loader import VersionLoader, unload_served
from server.repository.model_config import ModelConfig
from server.repository.version_state import ModelRecord, SourceKey, VersionState

log = logging.getLogger(__name__)

UNLOADED = "unloaded"


@dataclass(frozen=True)
class LoadPlan:
    """What to serve for one model after a (re)load: `serve` versions, of which `load` are loaded fresh."""

    config: ModelConfig
    backend_cls: type[Backend]
    model_dir: Path
    serve: tuple[int, ...]
    load: tuple[int, ...]
    missing: tuple[int, ...] = ()
    """Versions the policy names that have no version dir: shown UNAVAILABLE."""
    sources: Mapping[int, SourceKey] = field(default_factory=dict)
    override: OverrideDir | None = None


def describe(e: BaseException) -> str:
    if isinstance(e, HangarError):
        return e.message
    if isinstance(e, asyncio.CancelledError):
        return "the load was cancelled"
    return f"{type(e).__name__}: {e}"


class Lifecycle:
    """Owns loading, swapping and retiring instances; every method runs on the event loop."""

    def __init__(self, loader: VersionLoader) -> None:
        self._loader = loader
        self._tasks: set[asyncio.Task[None]] = set()
        self.retiring: set[ServedVersion] = set()
        self.closing = False
        self._force_unload = asyncio.Event()

    async def _load_one(self, plan: LoadPlan, version: int) -> ServedVersion:
        override = plan.override
        if override is not None:
            override.retain()
        try:
            return await self._loader.load(
                plan.backend_cls,
                plan.config,
                plan.model_dir,
                version,
                on_unloaded=override.release if override is not None else None,
            )
        except BaseException:
            if override is not None:
                override.release()
            raise

    async def apply(self, record: ModelRecord, plan: LoadPlan) -> dict[int, str]:
        """Load `plan.load`, swap each success in, and retire versions no longer served once every
        `plan.serve` version is READY. A failed version keeps its previous instance serving.

        Returns the failures: version -> reason.
        """
        for v in plan.load:
            slot = record.slot(v)
            if slot.served is None:
                slot.state, slot.reason = VersionState.LOADING, ""
        try:
            results = await asyncio.gather(
                *(self._load_one(plan, v) for v in plan.load), return_exceptions=True
            )
        except asyncio.CancelledError:
            for v in plan.load:
                if record.slot(v).state is VersionState.LOADING:
                    record.slot(v).set_failed("the load was cancelled", None)
            raise
        finally:
            if plan.override is not None:
                plan.override.release()
        failures: dict[int, str] = {}
        for v, result in zip(plan.load, results, strict=True):
            slot = record.slot(v)
            if isinstance(result, ServedVersion) and self.closing:
                self._retire(result)
                failures[v] = "the server is shutting down"
                slot.set_failed(failures[v], None)
            elif isinstance(result, ServedVersion):
                old = slot.set_serving(result, plan.sources.get(v))
                if old is not None:
                    self._retire(old)
            else:
                failures[v] = describe(result)
                slot.set_failed(failures[v], plan.sources.get(v))
                log.error("model '%s' version %d: %s", record.name, v, failures[v])
        for v in plan.missing:
            failures[v] = f"version {v} named by the version policy has no version directory"
            record.slot(v).set_failed(failures[v], None)
        record.reason = ""
        record.refresh_default()
        if all(record.slot(v).served is not None for v in plan.serve):
            for v in sorted(record.serving_versions() - set(plan.serve)):
                self.retire_version(record, v)
        return failures

    def retire_version(
        self, record: ModelRecord, version: int, reason: str = UNLOADED
    ) -> asyncio.Task[None] | None:
        """Stop new requests to `version`, then drain and unload it in the background; the slot shows
        UNLOADING, then UNAVAILABLE with `reason`."""
        slot = record.slot(version)
        old = slot.take_for_unload()
        record.refresh_default()
        if old is None:
            return None

        def done() -> None:
            if slot.served is None and slot.state is VersionState.UNLOADING:
                slot.state, slot.reason = VersionState.UNAVAILABLE, reason

        return self._retire(old, done)

    def retire_all(self, record: ModelRecord, reason: str = UNLOADED) -> list[asyncio.Task[None]]:
        tasks = [self.retire_version(record, v, reason) for v in sorted(record.serving_versions())]
        return [t for t in tasks if t is not None]

    def _retire(self, served: ServedVersion, done: Callable[[], None] | None = None) -> asyncio.Task[None]:
        served.retire()
        self.retiring.add(served)
        task = asyncio.get_running_loop().create_task(self._drain_and_unload(served, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain_and_unload(self, served: ServedVersion, done: Callable[[], None] | None) -> None:
        idle = asyncio.ensure_future(served.wait_idle())
        forced = asyncio.ensure_future(self._force_unload.wait())
        try:
            await asyncio.wait({idle, forced}, return_when=asyncio.FIRST_COMPLETED)
            if not idle.done():
                log.warning(
                    "unloading '%s' version %d with %d requests still in flight (shutdown timeout)",
                    served.name,
                    served.version,
                    served.in_flight,
                )
            await asyncio.to_thread(unload_served, served)
            log.info("unloaded '%s' version %d", served.name, served.version)
        finally:
            idle.cancel()
            forced.cancel()
            self.retiring.discard(served)
            if done is not None:
                done()

    async def wait_retired(self, timeout_s: float | None) -> bool:
        """Wait for every drain + unload in progress; True if all finished within `timeout_s`."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    async def close(self, records: list[ModelRecord], timeout_s: float) -> None:
        """Retire everything, let in-flight requests finish for up to `timeout_s`, then unload regardless."""
        self.closing = True
        for record in records:
            self.retire_all(record)
        if not await self.wait_retired(timeout_s):
            self._force_unload.set()
            if not await self.wait_retired(max(timeout_s, 5.0)):
                log.error("some backends did not finish unloading during shutdown")


def fingerprints(model_fp: Fingerprint, versions: Mapping[int, Fingerprint]) -> dict[int, SourceKey]:
    return {v: (model_fp, fp) for v, fp in versions.items()}
