"""What the startup/explicit loads and the poller share: repositories, registry, lifecycle, model records."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from server.backends.base import BackendRegistry
from server.repository.lifecycle import Lifecycle
from server.repository.version_state import ModelRecord


@dataclass(frozen=True)
class RepositoryContext:
    repositories: tuple[Path, ...]
    registry: BackendRegistry
    lifecycle: Lifecycle
    records: MutableMapping[str, ModelRecord]
    """The manager's records by model name (shared and mutated by loads and polls)."""
    new_record: Callable[[str], ModelRecord]
