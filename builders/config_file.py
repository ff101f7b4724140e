"""A model's config.pbtxt during a build: the planned text, its check against the server's own parsing
and backend auto-complete, and the atomic write."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from builders.errors import BuildInputError
from builders.owned_config import OwnedConfig, merge_config, new_config_text
from builders.staging import new_staging_name
from server.backends.base import BackendRegistry
from server.errors import HangarError, LoadError
from server.protocol.config_text import parse_config_text
from server.repository.model_config import ModelConfig

CONFIG_NAME = "config.pbtxt"


@dataclass(frozen=True)
class ConfigPlan:
    path: Path
    old: str | None
    """The current file's text; None when there is none."""
    new: str
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def action(self) -> str:
        return "create" if self.old is None else "update" if self.changed else "keep (unchanged)"

    def current(self) -> bool:
        """Whether the file still holds what this plan was made from."""
        try:
            now = self.path.read_text(encoding="utf-8") if self.path.is_file() else None
        except (OSError, UnicodeDecodeError):
            return False
        return now == self.old

    def diff(self) -> list[str]:
        old = [] if self.old is None else self.old.splitlines()
        return list(
            difflib.unified_diff(old, self.new.splitlines(), "config.pbtxt", "config.pbtxt", lineterm="")
        )


def plan_config(model_dir: Path, model: str, target: str, owned: OwnedConfig) -> ConfigPlan:
    """The config.pbtxt this build will leave, checked as the server will read it.

    Raises:
        BuildInputError: the existing file cannot be read or parsed, names another model, or the result
            is refused by the backend (unknown parameter, wrong type), each naming the file.
    """
    path = model_dir / CONFIG_NAME
    old: str | None = None
    if path.is_file():
        try:
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BuildInputError(f"cannot read {path}: {e}") from None
        _parse(old, path)
    base = old if old is not None else new_config_text(model, target, owned)
    try:
        new = merge_config(base, owned)
    except ValueError as e:
        raise BuildInputError(f"cannot edit {path}: {e}") from None
    warnings = check_config(new, model, model_dir, path)
    return ConfigPlan(path, old, new, tuple(warnings))


def _parse(text: str, path: Path) -> dict[str, object]:
    try:
        return parse_config_text(text, str(path))
    except HangarError as e:
        raise BuildInputError(f"{e.message}; fix or remove {path}") from None


def check_config(text: str, model: str, model_dir: Path, path: Path) -> list[str]:
    """Parse, name check and backend auto-complete, as the server does at load; returns warnings.

    Raises:
        BuildInputError: what the server would refuse.
    """
    data = _parse(text, path)
    declared = data.get("name", "")
    if declared and declared != model:
        raise BuildInputError(f"{path} declares name '{declared}', but the model directory is '{model}'")
    try:
        config = ModelConfig.from_dict(data, default_name=model)
    except HangarError as e:
        raise BuildInputError(f"{path}: {e.message}") from None
    try:
        backend = BackendRegistry().get(config.backend_name)
    except LoadError as e:
        return [f"{path} was not checked against backend '{config.backend_name}': {e.message}"]
    try:
        backend.auto_complete_config(config, model_dir)
    except HangarError as e:
        raise BuildInputError(f"{path}: the {config.backend_name} backend refuses it: {e.message}") from None
    return []


def write_config(plan: ConfigPlan) -> None:
    """Replace config.pbtxt atomically (a hidden temporary file renamed over it); a no-op if unchanged."""
    if not plan.changed:
        return
    tmp = plan.path.with_name(new_staging_name(CONFIG_NAME))
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(plan.new)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, plan.path)
    finally:
        tmp.unlink(missing_ok=True)
