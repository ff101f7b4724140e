"""ModelManager: the lifecycle of every (model, version) and the lookups the request path uses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from server.backends.base import Backend, BackendRegistry
from server.errors import HangarError, InvalidInput, ModelNotFound, ModelNotReady, Unavailable
from server.repository.context import RepositoryContext
from server.repository.handle import ModelHandle, ServedVersion
from server.repository.layout import list_model_names, scan_repositories
from server.repository.lifecycle import Lifecycle
from server.repository.load_overrides import LoadOverrides, LoadParameter, parse_load_parameters
from server.repository.loader import VersionLoader
from server.repository.manager_config import ControlMode, ManagerConfig, check_manager_config
from server.repository.model_config import ModelConfig
from server.repository.model_loads import ModelLoads
from server.repository.poller import RepositoryPoller
from server.repository.version_state import IndexEntry, ModelRecord, VersionState
from server.stats import ModelStats

__all__ = [
    "ControlMode",
    "IndexEntry",
    "LoadedVersion",
    "ManagerConfig",
    "ModelHandle",
    "ModelManager",
    "VersionState",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedVersion:
    name: str
    version: int
    config: ModelConfig
    backend: Backend
    stats: ModelStats
    load_duration_s: float


def _parse_version(version: str) -> int:
    if not (version.isascii() and version.isdigit()):
        raise InvalidInput(
            f"invalid model version '{version}': expected a positive integer (or empty for the default)"
        )
    return int(version)


def _loaded(s: ServedVersion) -> LoadedVersion:
    return LoadedVersion(s.name, s.version, s.config, s.backend, s.stats, s.load_duration_s)


class ModelManager:
    """Owns every model record. All methods run on the event loop; backends load and unload on threads."""

    def __init__(self, config: ManagerConfig, registry: BackendRegistry | None = None) -> None:
        check_manager_config(config)
        self._config = config
        self._records: dict[str, ModelRecord] = {}
        self._lifecycle = Lifecycle(VersionLoader(config.load_thread_count))
        registry = registry or BackendRegistry()
        ctx = RepositoryContext(
            tuple(config.repositories), registry, self._lifecycle, self._records, self._new_record
        )
        self._loads = ModelLoads(ctx)
        self._poller = RepositoryPoller(ctx)
        self._poll_lock = asyncio.Lock()
        self._poll_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._started = False
        self._closing = False

    def _new_record(self, name: str) -> ModelRecord:
        record = ModelRecord(name)
        self._records[name] = record
        return record

    # -- life of the manager ------------------------------------------------------------------

    async def start(self) -> None:
        """Initial loads (none/poll: every model; explicit: `startup_models`); starts polling in poll mode.

        Raises:
            ConfigError: a repository is missing or unreadable. Failed model loads are logged, not raised.
        """
        if self._started:
            return
        scan = await asyncio.to_thread(scan_repositories, self._config.repositories)
        mode = self._config.control_mode
        names = list(dict.fromkeys(self._config.startup_models))
        if mode is not ControlMode.EXPLICIT or names == ["*"]:
            names = scan.names()
        await asyncio.gather(*(self._loads.startup_load(name, scan) for name in names))
        if mode is ControlMode.POLL:
            self._poller.prime(scan)
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_loop())
        self._started = True
        ready = sum(1 for r in self._records.values() if r.has_ready)
        log.info("model manager started (%s mode): %d of %d models ready", mode.value, ready, len(names))

    async def shutdown(self, timeout_s: float) -> None:
        """Stop polling, let in-flight requests finish for up to `timeout_s`, then unload everything."""
        self._closing = True
        self._stop.set()
        if self._poll_task is not None:
            done, _ = await asyncio.wait({self._poll_task}, timeout=timeout_s)
            if not done:
                self._poll_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poll_task
        await self._lifecycle.close(list(self._records.values()), timeout_s)

    def unloading(self) -> list[str]:
        """The versions whose drain or unload is still running, as "'name' version N"."""
        return sorted(f"'{s.name}' version {s.version}" for s in self._lifecycle.retiring)

    async def _poll_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._config.poll_interval_s)
            if not self._stop.is_set():
                await self.poll_once()

    async def poll_once(self) -> None:
        """Poll mode: one rescan, diff and apply (else a no-op). Never raises: a failed poll is logged and
        the next one runs."""
        if self._config.control_mode is not ControlMode.POLL or not self._started:
            return  # repository changes are ignored outside poll mode
        async with self._poll_lock:
            if self._closing:
                return
            try:
                await self._poller.poll()
            except Exception:
                log.exception("repository poll failed; polling continues")

    # -- explicit control ----------------------------------------------------------------------

    def _require_explicit(self, what: str) -> None:
        mode = self._config.control_mode
        if mode is not ControlMode.EXPLICIT:
            raise Unavailable(f"explicit model {what} is not allowed in '{mode.value}' model control mode")
        if self._closing:
            raise Unavailable(f"model {what} refused: the server is shutting down")

    async def load(self, name: str, parameters: Mapping[str, LoadParameter]) -> None:
        """Load or reload `name` (load new, swap, drain old); a failure leaves what was serving in place.

        Raises:
            Unavailable: not in explicit mode, or shutting down.
            InvalidInput: a bad load parameter (nothing is written).
            LoadError: unknown model, bad config, or a version failed to load.
        """
        self._require_explicit("load")
        overrides: LoadOverrides = parse_load_parameters(parameters)
        await self._loads.explicit_load(name, overrides)

    async def unload(self, name: str, unload_dependents: bool = False) -> None:
        """Stop new requests to every version of `name`, drain in-flight ones, then unload. Hangar has no
        ensembles, so there are no dependents and `unload_dependents` changes nothing."""
        self._require_explicit("unload")
        await self._loads.explicit_unload(name)

    # -- lookups on the request path -----------------------------------------------------------

    def _lookup(self, name: str, version: str) -> ServedVersion:
        record = self._records.get(name)
        if record is None:
            raise ModelNotFound(f"Request for unknown model: '{name}' is not found")
        if version == "":
            served = record.default
            if served is None:
                why = f": {record.reason}" if record.reason else ""
                raise ModelNotReady(f"Request for unknown model: '{name}' has no available versions{why}")
        else:
            v = _parse_version(version)
            slot = record.slots.get(v)
            if slot is None:
                raise ModelNotFound(f"Request for unknown model: '{name}' version {v} is not found")
            if slot.served is None or slot.state is not VersionState.READY:
                why = f" ({slot.state.value}{': ' + slot.reason if slot.reason else ''})"
                raise ModelNotReady(
                    f"Request for unknown model: '{name}' version {v} is not at ready state{why}"
                )
            served = slot.served
        if not served.backend.ready:
            raise ModelNotReady(f"model '{name}' version {served.version} is not ready: its backend stopped")
        return served

    def acquire(self, name: str, version: str = "") -> ModelHandle:
        """A handle on the version to serve ("" = highest READY); release it when the request ends.

        Raises:
            InvalidInput: `version` is not an integer.
            ModelNotFound: no such model or version.
            ModelNotReady: the version exists but is not READY (state and reason in the message).
        """
        return self._lookup(name, version).acquire()

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self._lookup(name, version)
        except Exception:
            return False
        return True

    @property
    def server_ready(self) -> bool:
        if not self._started or self._closing:
            return False
        if not self._config.strict_readiness:
            return True
        return all(r.has_ready and r.default is not None and r.default.backend.ready
                   for r in self._records.values() if r.expected)  # fmt: skip

    def config(self, name: str, version: str = "") -> ModelConfig:
        """The config of that version (or of the default one).

        Raises:
            InvalidInput: `version` is not an integer.
            ModelNotFound: the model or version is not loaded.
        """
        record = self._records.get(name)
        served = None
        if record is not None and version == "":
            served = record.default
        elif record is not None:
            slot = record.slots.get(_parse_version(version))
            served = slot.served if slot is not None else None
        if served is None:
            what = f"'{name}'" + (f" version {version}" if version else "")
            raise ModelNotFound(f"Request for unknown model: {what} is not found")
        return served.config

    def ready_versions(self, name: str) -> list[int]:
        record = self._records.get(name)
        if record is None:
            return []
        return sorted(v for v, s in record.slots.items() if s.state is VersionState.READY and s.served)

    def loaded_versions(self) -> list[LoadedVersion]:
        """READY versions, then draining (UNLOADING) instances not superseded by a READY one."""
        out = [_loaded(s) for r in self._records.values() for s in r.all_served()]
        serving = {(x.name, x.version) for x in out}
        out += [_loaded(s) for s in self._lifecycle.retiring if (s.name, s.version) not in serving]
        return sorted(out, key=lambda x: (x.name, x.version))

    def index(self, repository_name: str = "", ready_only: bool = False) -> list[IndexEntry]:
        """Every model dir (a fresh listing, so explicit mode sees new dirs) plus every known model.

        Raises:
            InvalidInput: `repository_name` matches no repository (by path or by its directory name).
        """
        repos = self._config.repositories
        if repository_name:
            repos = tuple(r for r in repos if repository_name in (str(r), r.name))
            if not repos:
                known = ", ".join(str(r) for r in self._config.repositories)
                raise InvalidInput(f"unknown repository '{repository_name}' (repositories: {known})")
        names: set[str] = set()
        for repo in repos:
            with contextlib.suppress(HangarError):
                names.update(list_model_names(repo))
        names.update(n for n, r in self._records.items() if not repository_name or r.repository in repos)
        entries: list[IndexEntry] = []
        for name in sorted(names):
            record = self._records.get(name)
            entries += record.entries() if record is not None else [IndexEntry(name, "", "", "")]
        if ready_only:
            entries = [e for e in entries if e.state == VersionState.READY.value]
        return entries
