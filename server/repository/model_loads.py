"""Whole-model loads and unloads: at startup and through the explicit RepositoryModelLoad/Unload RPCs."""

from __future__ import annotations

import asyncio
import logging

from server.errors import HangarError, LoadError
from server.repository.config_source import resolve_config
from server.repository.context import RepositoryContext
from server.repository.layout import (
    ModelDir,
    RepositoryScan,
    duplicate_reason,
    scan_repositories,
    scan_versions,
)
from server.repository.lifecycle import UNLOADED, LoadPlan, describe
from server.repository.load_overrides import LoadOverrides, OverrideDir, write_override_dir
from server.repository.version_state import ModelRecord, VersionState
from server.repository.versions import missing_versions, select_versions

log = logging.getLogger(__name__)


class ModelLoads:
    """Loads every servable version of a model as one operation, serialised per model."""

    def __init__(self, ctx: RepositoryContext) -> None:
        self._ctx = ctx

    def _not_found(self, name: str) -> str:
        repos = ", ".join(str(r) for r in self._ctx.repositories)
        return f"failed to load '{name}': no model directory '{name}' in the model repositories ({repos})"

    async def startup_load(self, name: str, scan: RepositoryScan) -> None:
        """Load one model at startup; a failure is logged and shown in the index, never raised."""
        if name not in scan.models and name not in scan.duplicates:
            record = self._ctx.records.get(name) or self._ctx.new_record(name)
            record.expected = True
            record.fail_all(self._not_found(name))
            log.error("%s", record.reason)
            return
        try:
            await self._load(name, scan, LoadOverrides())
        except HangarError as e:
            log.error("%s", e.message)

    async def explicit_load(self, name: str, overrides: LoadOverrides) -> None:
        """Raises LoadError when the model is unknown, its config is bad, or a version failed to load."""
        try:
            scan = await asyncio.to_thread(scan_repositories, self._ctx.repositories, name)
        except HangarError as e:
            raise LoadError(f"failed to load '{name}': {e.message}") from e
        if name not in scan.models and name not in scan.duplicates:
            raise LoadError(self._not_found(name))
        await self._load(name, scan, overrides)

    async def explicit_unload(self, name: str) -> None:
        """Retire every version, wait for the drain and unload; unloading a model not loaded is a no-op."""
        record = self._ctx.records.get(name)
        if record is None:
            return
        async with record.lock:
            record.expected = False
            tasks = self._ctx.lifecycle.retire_all(record, UNLOADED)
            record.reason = UNLOADED
            for slot in record.slots.values():
                if slot.state in (VersionState.UNAVAILABLE, VersionState.UNKNOWN):
                    slot.state, slot.reason = VersionState.UNAVAILABLE, UNLOADED
        await asyncio.gather(*tasks)

    async def _load(self, name: str, scan: RepositoryScan, overrides: LoadOverrides) -> None:
        record = self._ctx.records.get(name) or self._ctx.new_record(name)
        record.expected = True
        if name in scan.duplicates:
            record.fail_all(duplicate_reason(name, scan.duplicates[name]))
            raise LoadError(record.reason)
        async with record.lock:
            failures = await self._load_locked(record, scan.models[name], overrides)
        if failures:
            raise LoadError("; ".join(failures[v] for v in sorted(failures)))

    async def _load_locked(
        self, record: ModelRecord, model: ModelDir, overrides: LoadOverrides
    ) -> dict[int, str]:
        record.repository = model.repository
        override: OverrideDir | None = None
        try:
            if overrides.files:
                override = await asyncio.to_thread(write_override_dir, record.name, overrides.files)
            plan = await self._plan(record.name, model, overrides, override)
        except Exception as e:
            if override is not None:
                override.release()
            record.fail_all(describe(e))
            raise LoadError(record.reason) from e
        return await self._ctx.lifecycle.apply(record, plan)

    async def _plan(
        self, name: str, model: ModelDir, overrides: LoadOverrides, override: OverrideDir | None
    ) -> LoadPlan:
        if override is not None:
            model_dir = override.model_dir
            versions = {v: d.path for v, d in (await asyncio.to_thread(scan_versions, model_dir)).items()}
            sources = {}
        else:
            model_dir = model.path
            versions = {v: d.path for v, d in model.versions.items()}
            sources = {v: (model.model_fingerprint, d.fingerprint) for v, d in model.versions.items()}
        config, cls = await asyncio.to_thread(
            resolve_config,
            name,
            model_dir,
            list(versions.values()),
            self._ctx.registry,
            overrides.config_json,
        )
        serve = select_versions(config.version_policy, versions)
        missing = missing_versions(config.version_policy, versions)
        if not serve and not missing:
            raise LoadError(f"failed to load '{name}': no version directory to serve in {model_dir}")
        return LoadPlan(config, cls, model_dir, serve, serve, missing, sources, override)
