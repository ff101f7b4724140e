"""Poll mode: rescan the repositories, diff against what is served, and apply only stable changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from server.backends.base import Backend
from server.repository.config_source import resolve_config
from server.repository.context import RepositoryContext
from server.repository.layout import ModelDir, RepositoryScan, duplicate_reason, scan_repositories
from server.repository.lifecycle import LoadPlan, describe
from server.repository.model_config import ModelConfig
from server.repository.version_state import ModelRecord, SourceKey, VersionState
from server.repository.versions import missing_versions, select_versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StableView:
    """A model dir as seen by two consecutive scans: which version dirs did not change in between."""

    current: ModelDir
    stable: frozenset[int]
    signature: object
    """Equal signatures across polls mean nothing to do for this model."""

    def source(self, version: int) -> SourceKey:
        return (self.current.model_fingerprint, self.current.versions[version].fingerprint)


def stable_view(current: ModelDir, previous: ModelDir | None) -> StableView | None:
    """None while the model's own files (config.pbtxt, labels...) are still changing or are new."""
    if previous is None or previous.model_fingerprint != current.model_fingerprint:
        return None
    stable = frozenset(
        v
        for v, d in current.versions.items()
        if (p := previous.versions.get(v)) is not None and p.fingerprint == d.fingerprint
    )
    signature = (
        current.model_fingerprint,
        tuple(sorted((v, current.versions[v].fingerprint) for v in stable)),
        tuple(sorted(current.versions)),
    )
    return StableView(current, stable, signature)


def poll_plan(record: ModelRecord, view: StableView, config: ModelConfig, cls: type[Backend]) -> LoadPlan:
    """Serve the policy's pick among stable (or already served) versions; (re)load those whose source
    changed, unless that exact source already failed."""
    present = set(view.current.versions)
    served = record.serving_versions()
    serve = select_versions(config.version_policy, view.stable | (served & present))
    sources = {v: view.source(v) for v in present}
    load = []
    for v in serve:
        slot = record.slots.get(v)
        loaded = slot.loaded_from if slot is not None and slot.served is not None else None
        failed = slot.failed_from if slot is not None else None
        if v in view.stable and loaded != sources[v] and failed != sources[v]:
            load.append(v)
    return LoadPlan(
        config=config,
        backend_cls=cls,
        model_dir=view.current.path,
        serve=serve,
        load=tuple(load),
        missing=missing_versions(config.version_policy, present),
        sources=sources,
    )


class RepositoryPoller:
    """Diffs each scan against the previous one and against what is served."""

    def __init__(self, ctx: RepositoryContext) -> None:
        self._ctx = ctx
        self._previous: RepositoryScan | None = None

    def prime(self, scan: RepositoryScan) -> None:
        """Take the startup scan as the baseline: what startup loaded is not loaded again."""
        self._previous = scan
        for name, model in scan.models.items():
            record = self._ctx.records.get(name)
            view = stable_view(model, model)
            if record is not None and view is not None:
                record.poll_signature = view.signature

    async def poll(self) -> None:
        """One rescan and apply. A failure in one model is logged and does not stop the others.

        Raises:
            ConfigError: a repository could not be read (nothing is changed for this poll).
        """
        scan = await asyncio.to_thread(scan_repositories, self._ctx.repositories)
        previous, self._previous = self._previous, scan
        names = sorted(set(scan.names()) | set(self._ctx.records))
        results = await asyncio.gather(
            *(self._poll_model(name, scan, previous) for name in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Exception):
                log.error("polling model '%s' failed: %s", name, describe(result), exc_info=result)

    async def _poll_model(self, name: str, scan: RepositoryScan, previous: RepositoryScan | None) -> None:
        if name in scan.duplicates:
            await self._mark_duplicate(name, scan)
        elif name not in scan.models:
            await self._remove(name)
        else:
            current = scan.models[name]
            view = stable_view(current, previous.models.get(name) if previous else None)
            if view is None:
                log.info("model '%s': files are changing, waiting for them to settle", name)
                return
            record = self._ctx.records.get(name) or self._ctx.new_record(name)
            if record.poll_signature == view.signature:
                return
            async with record.lock:
                await self._apply_view(record, view)
                record.poll_signature = view.signature

    async def _apply_view(self, record: ModelRecord, view: StableView) -> None:
        record.expected = True
        record.repository = view.current.repository
        for v in [v for v, s in record.slots.items() if v not in view.current.versions and s.served is None]:
            if record.slots[v].state in (VersionState.UNAVAILABLE, VersionState.UNKNOWN):
                del record.slots[v]
        paths = [d.path for d in view.current.versions.values()]
        try:
            config, cls = await asyncio.to_thread(
                resolve_config, record.name, view.current.path, paths, self._ctx.registry
            )
        except Exception as e:
            reason = describe(e)
            log.error("model '%s': %s", record.name, reason)
            record.fail_all(reason)
            return
        await self._ctx.lifecycle.apply(record, poll_plan(record, view, config, cls))

    async def _mark_duplicate(self, name: str, scan: RepositoryScan) -> None:
        record = self._ctx.records.get(name) or self._ctx.new_record(name)
        reason = duplicate_reason(name, scan.duplicates[name])
        async with record.lock:
            record.expected = True
            record.poll_signature = None
            if record.reason != reason:
                log.error("%s", reason)
            record.reason = reason
            self._ctx.lifecycle.retire_all(record, reason)
            for slot in record.slots.values():
                if slot.state is VersionState.UNAVAILABLE:
                    slot.reason = reason

    async def _remove(self, name: str) -> None:
        record = self._ctx.records.get(name)
        if record is None:
            return
        async with record.lock:
            log.info("model '%s' was removed from the repository: unloading it", name)
            self._ctx.lifecycle.retire_all(record)
            self._ctx.records.pop(name, None)
