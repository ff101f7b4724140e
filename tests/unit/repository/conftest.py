"""Fixtures for repository tests: a probe, a repository dir, and a manager factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.repository.manager import ControlMode, ManagerConfig, ModelManager
from tests.unit.repository.probe_backend import Probe, probe_registry


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def make_manager(repo: Path, probe: Probe) -> Callable[..., ModelManager]:
    """make_manager(mode="none"|"poll"|"explicit", repositories=(repo,), **ManagerConfig fields)."""

    def make(mode: str = "none", repositories: tuple[Path, ...] | None = None, **kw: Any) -> ModelManager:
        extra_backends = kw.pop("extra_backends", ())
        cfg = ManagerConfig(
            repositories=repositories or (repo,),
            control_mode=ControlMode(mode),
            poll_interval_s=kw.pop("poll_interval_s", 3600.0),
            **kw,
        )
        return ModelManager(cfg, probe_registry(probe, *extra_backends))

    return make
