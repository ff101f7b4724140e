"""Per-model lifecycle state: each version's state and reason, the instance serving it, the index rows."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from pathlib import Path

from server.repository.handle import ServedVersion
from server.repository.layout import Fingerprint


class VersionState(enum.Enum):
    """RepositoryIndex states; the value is the index string."""

    UNKNOWN = "UNKNOWN"
    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"


@dataclass(frozen=True)
class IndexEntry:
    """One RepositoryIndex row; `version` and `state` are "" for a model that was never loaded."""

    name: str
    version: str
    state: str
    reason: str


SourceKey = tuple[Fingerprint, Fingerprint]
"""(model fingerprint, version fingerprint) a version was loaded from: poll reloads when it changes."""


@dataclass
class VersionSlot:
    """One version of a model: what the index shows and which instance (if any) takes new requests."""

    version: int
    state: VersionState = VersionState.UNKNOWN
    reason: str = ""
    served: ServedVersion | None = None
    loaded_from: SourceKey | None = None
    failed_from: SourceKey | None = None
    """The source of the last failed load; poll mode does not retry it until the files change."""

    def set_serving(self, served: ServedVersion, source: SourceKey | None) -> ServedVersion | None:
        """Make `served` take new requests; returns the instance it replaces (to be drained)."""
        old, self.served = self.served, served
        self.state, self.reason = VersionState.READY, ""
        self.loaded_from, self.failed_from = source, None
        return old

    def set_failed(self, reason: str, source: SourceKey | None) -> None:
        """A failed (re)load: an instance already serving keeps serving, with the failure as reason."""
        self.failed_from = source
        if self.served is not None:
            self.state, self.reason = (
                VersionState.READY,
                f"reload failed, previous version still serving: {reason}",
            )
        else:
            self.state, self.reason = VersionState.UNAVAILABLE, reason

    def take_for_unload(self) -> ServedVersion | None:
        """Stop taking new requests; the caller drains and unloads what is returned."""
        old, self.served = self.served, None
        if old is not None:
            self.state, self.reason = VersionState.UNLOADING, ""
        self.loaded_from = None
        return old


@dataclass
class ModelRecord:
    """Everything the manager knows about one model name."""

    name: str
    repository: Path | None = None
    slots: dict[int, VersionSlot] = field(default_factory=dict)
    reason: str = ""
    """A model-level failure (duplicate, config error) shown when no version row carries it."""
    poll_signature: object = None
    """What the last poll applied (fingerprints of the model and its stable versions); equal means no-op."""
    expected: bool = False
    """Should be loaded (startup or an explicit load): counts for strict readiness."""
    default: ServedVersion | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def slot(self, version: int) -> VersionSlot:
        return self.slots.setdefault(version, VersionSlot(version))

    def serving_versions(self) -> set[int]:
        return {v for v, s in self.slots.items() if s.served is not None}

    def refresh_default(self) -> None:
        """The default for an empty request version: the highest READY version."""
        ready = [s for s in self.slots.values() if s.state is VersionState.READY and s.served is not None]
        self.default = max(ready, key=lambda s: s.version).served if ready else None

    def fail_all(self, reason: str) -> None:
        """A model-level failure (config, duplicate): served versions keep serving, the rest show it."""
        self.reason = reason
        for slot in self.slots.values():
            if slot.state not in (VersionState.LOADING, VersionState.UNLOADING):
                slot.set_failed(reason, slot.failed_from)

    @property
    def has_ready(self) -> bool:
        return self.default is not None

    def entries(self) -> list[IndexEntry]:
        if not self.slots:
            state = VersionState.UNAVAILABLE.value if self.reason else ""
            return [IndexEntry(self.name, "", state, self.reason)]
        rows = []
        for v in sorted(self.slots):
            s = self.slots[v]
            reason = s.reason or (self.reason if s.state is not VersionState.READY else "")
            rows.append(IndexEntry(self.name, str(v), s.state.value, reason))
        return rows

    def all_served(self) -> list[ServedVersion]:
        return [s.served for s in self.slots.values() if s.served is not None]
