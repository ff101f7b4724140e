"""Where a model's config comes from (config.pbtxt, a load override, or its files) and its auto-complete."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from server.backends.base import Backend, BackendRegistry
from server.errors import HangarError, LoadError
from server.protocol.config_text import parse_config_json, parse_config_text
from server.repository.layout import CONFIG_FILENAME
from server.repository.model_config import ModelConfig, unenforced_fields

log = logging.getLogger(__name__)

# With no backend named anywhere, the model file decides (as Triton's auto-complete does).
_BACKEND_BY_FILE = {"model.onnx": "onnxruntime", "model.py": "python"}


def infer_backend(version_dirs: Iterable[Path]) -> str:
    """The backend implied by a model file in any version dir, or "" when none is recognised."""
    for vdir in version_dirs:
        for filename, backend in _BACKEND_BY_FILE.items():
            if (vdir / filename).exists():
                return backend
    return ""


def read_config_dict(model_dir: Path, override_json: str | None) -> dict[str, Any]:
    """The config's JSON form: the override if given, else config.pbtxt, else {} (auto-complete decides).

    Raises:
        HangarError: the override or the file does not parse.
    """
    if override_json is not None:
        return parse_config_json(override_json)
    path = model_dir / CONFIG_FILENAME
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"cannot read {path}: {e}") from None
    return parse_config_text(text, str(path))


def resolve_config(
    name: str,
    model_dir: Path,
    version_dirs: Iterable[Path],
    registry: BackendRegistry,
    override_json: str | None = None,
) -> tuple[ModelConfig, type[Backend]]:
    """Parse, check and auto-complete the config of model `name` in `model_dir`. Blocking (reads, imports).

    Raises:
        LoadError: with the reason (parse error, name mismatch, unknown backend, auto-complete refusal).
    """
    try:
        data = read_config_dict(model_dir, override_json)
        declared = data.get("name", "")
        if declared and declared != name:
            raise LoadError(
                f"model name '{declared}' in the config does not match the model directory name '{name}'"
            )
        config = ModelConfig.from_dict(data, default_name=name)
        if not config.backend_name:
            backend = infer_backend(version_dirs)
            if not backend:
                where = "config.pbtxt" if data or override_json is not None else "no config.pbtxt"
                raise LoadError(
                    f"model '{name}' has {where} without 'backend' or 'platform', and no model file "
                    f"({', '.join(_BACKEND_BY_FILE)}) in its version dirs tells which backend to use"
                )
            config = config.with_changes(backend=backend)
        backend_cls = registry.get(config.backend_name)
        completed = backend_cls.auto_complete_config(config, model_dir)
    except LoadError:
        raise
    except HangarError as e:
        raise LoadError(f"invalid config for model '{name}': {e.message}") from e
    if completed.name != name:
        raise LoadError(f"backend '{config.backend_name}' renamed model '{name}' to '{completed.name}'")
    ignored = unenforced_fields(data)
    if ignored:
        log.warning("model '%s': config %s accepted but not enforced by Hangar", name, ", ".join(ignored))
    return completed, backend_cls
