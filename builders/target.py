"""The plug point of `hangar build`: a Target knows what to write into a version dir and how to check it;
the drop pipeline (builders/pipeline.py) does the rest the same way for every target."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from builders.owned_config import OwnedConfig
from builders.reporter import Reporter


@dataclass(frozen=True)
class DropOptions:
    """Where the version goes; the same flags for every target."""

    repository: Path
    model: str
    version: int | None = None
    """None: one above the highest existing version (1 for a new model)."""
    force: bool = False
    """Replace an existing `version` (atomically where the OS allows)."""
    dry_run: bool = False


@dataclass(frozen=True)
class BuildContext:
    """Paths a target writes to during one build."""

    staging: Path
    """Becomes the version dir; everything written here ends up in the version (and its manifest)."""
    scratch: Path
    """For intermediates that are not part of the version; removed after the build in any case."""
    reporter: Reporter

    def scratch_dir(self) -> Path:
        self.scratch.mkdir(exist_ok=True)
        return self.scratch


@dataclass(frozen=True)
class Step:
    """One long step of a build, shown in the plan and in the progress bar."""

    description: str
    run: Callable[[BuildContext], None]
    details: Callable[[BuildContext], list[str]] = field(default=lambda ctx: [])
    """Extra plan lines (e.g. the exact command it runs)."""


class Target(ABC):
    """One `hangar build <name>` subcommand's build, from already-parsed arguments."""

    name: ClassVar[str]

    @abstractmethod
    def check(self) -> None:
        """Reject bad input before any work starts.

        Raises:
            BuildInputError: naming the offending value (a missing file, an unsupported architecture,
                contradictory limits).
        """

    def check_runnable(self) -> None:  # noqa: B027 - most targets need nothing beyond Python packages
        """Raises BuildUnavailable when this machine cannot run the build (--dry-run only warns)."""

    @abstractmethod
    def steps(self) -> list[Step]:
        """The build, in order; each writes into `ctx.staging` (or `ctx.scratch`)."""

    @abstractmethod
    def validate(self, ctx: BuildContext) -> None:
        """Check what was written (load it, run it) before it becomes a version.

        Raises:
            BuildFailed: what is wrong.
        """

    def validation(self) -> str:
        """One plan line saying what `validate` does."""
        return "check the written files"

    @abstractmethod
    def owned_config(self) -> OwnedConfig:
        """The config.pbtxt fields this build sets."""

    @abstractmethod
    def source(self) -> Mapping[str, Any]:
        """Where the version comes from, for the manifest."""

    @abstractmethod
    def parameters(self) -> Mapping[str, Any]:
        """The settings it was built with, for the manifest."""
