"""How the model manager is configured: repositories, control mode, startup models, polling, readiness."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from server.errors import ConfigError


class ControlMode(enum.Enum):
    NONE = "none"
    POLL = "poll"
    EXPLICIT = "explicit"


@dataclass(frozen=True)
class ManagerConfig:
    repositories: tuple[Path, ...]
    control_mode: ControlMode = ControlMode.NONE
    startup_models: tuple[str, ...] = ()
    """Explicit mode only: models to load at startup; ("*",) loads them all."""
    poll_interval_s: float = 15.0
    strict_readiness: bool = True
    load_thread_count: int = 4


def check_manager_config(config: ManagerConfig) -> None:
    """Raises ConfigError naming the offending setting."""
    if not config.repositories:
        raise ConfigError("at least one model repository is required")
    startup = config.startup_models
    if startup and config.control_mode is not ControlMode.EXPLICIT:
        raise ConfigError(
            f"models to load at startup ({', '.join(startup)}) need explicit model control mode"
        )
    if "*" in startup and len(startup) > 1:
        raise ConfigError("load model '*' (all models) must be the only model named to load at startup")
    if config.poll_interval_s <= 0 and config.control_mode is ControlMode.POLL:
        raise ConfigError(f"repository poll interval must be positive, got {config.poll_interval_s}")
    if config.load_thread_count < 1:
        raise ConfigError(f"model load thread count must be >= 1, got {config.load_thread_count}")
