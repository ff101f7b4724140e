"""Shared fixtures of the builder tests: one tiny checkpoint per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.builders.checkpoints import demo_checkpoint


@pytest.fixture(scope="session")
def llama_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only: copy it (checkpoints.copy_checkpoint) before changing anything."""
    return demo_checkpoint(tmp_path_factory.mktemp("llama-checkpoint"))
