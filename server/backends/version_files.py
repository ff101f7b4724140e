"""Finding a model file in a model's version directories (for config auto-complete, before any load)."""

from __future__ import annotations

from pathlib import Path

from server.repository.layout import parse_version_name


def latest_version_file(model_dir: Path, filename: str) -> Path | None:
    """`<model_dir>/<v>/<filename>` for the highest version `v` that has the file, or None."""
    try:
        children = list(model_dir.iterdir())
    except OSError:
        return None
    versions = sorted(
        ((v, child) for child in children if (v := parse_version_name(child.name)) is not None),
        reverse=True,
    )
    return next((d / filename for _, d in versions if (d / filename).is_file()), None)
