"""Scan of one or more model repositories: model dirs, version dirs, duplicates and file fingerprints."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.errors import ConfigError

CONFIG_FILENAME = "config.pbtxt"

Fingerprint = tuple[tuple[str, int, int], ...]
"""(relative path, size, mtime_ns) of every file, sorted: equal fingerprints mean unchanged files."""


@dataclass(frozen=True)
class VersionDir:
    version: int
    path: Path
    fingerprint: Fingerprint


@dataclass(frozen=True)
class ModelDir:
    """One `<repository>/<model>` directory."""

    name: str
    path: Path
    repository: Path
    has_config: bool
    model_fingerprint: Fingerprint
    """Every file of the model outside its version dirs: config.pbtxt, label files, configs/, warmup/."""
    versions: Mapping[int, VersionDir] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILENAME


@dataclass(frozen=True)
class RepositoryScan:
    models: Mapping[str, ModelDir]
    """Models found in exactly one repository."""
    duplicates: Mapping[str, tuple[Path, ...]]
    """Model names found in two or more repositories, with those repositories."""

    def names(self) -> list[str]:
        return sorted(set(self.models) | set(self.duplicates))

    def repository_of(self, name: str) -> tuple[Path, ...]:
        if name in self.models:
            return (self.models[name].repository,)
        return self.duplicates.get(name, ())


def duplicate_reason(name: str, repositories: Iterable[Path]) -> str:
    where = ", ".join(str(r) for r in repositories)
    return f"model '{name}' appears in two or more repositories: {where}"


def parse_version_name(name: str) -> int | None:
    """A version dir name is a positive integer without a leading 0; anything else is not a version."""
    if not name.isdigit() or not name.isascii() or name.startswith("0"):
        return None
    return int(name)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _stat_entry(path: Path, rel: str) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        # A file removed while we walk: the fingerprint differs next time, which is what we want.
        return None
    return (rel, st.st_size, st.st_mtime_ns)


def fingerprint_tree(root: Path, skip: frozenset[str] = frozenset()) -> Fingerprint:
    """Fingerprint every visible file under `root`, skipping top-level entries named in `skip`."""
    entries: list[tuple[str, int, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        top = Path(dirpath) == root
        dirnames[:] = sorted(d for d in dirnames if _visible(d) and not (top and d in skip))
        for fname in filenames:
            if not _visible(fname) or (top and fname in skip):
                continue
            full = Path(dirpath) / fname
            entry = _stat_entry(full, full.relative_to(root).as_posix())
            if entry is not None:
                entries.append(entry)
    return tuple(sorted(entries))


def scan_versions(model_path: Path) -> dict[int, VersionDir]:
    """Version dirs of one model dir, with their fingerprints; non-numeric and hidden names are ignored."""
    versions: dict[int, VersionDir] = {}
    try:
        children = list(model_path.iterdir())
    except OSError:
        return versions
    for child in children:
        version = parse_version_name(child.name)
        if version is not None and child.is_dir():
            versions[version] = VersionDir(version, child, fingerprint_tree(child))
    return versions


def scan_model(model_path: Path, repository: Path) -> ModelDir:
    versions = scan_versions(model_path)
    version_names = frozenset(v.path.name for v in versions.values())
    return ModelDir(
        name=model_path.name,
        path=model_path,
        repository=repository,
        has_config=(model_path / CONFIG_FILENAME).is_file(),
        model_fingerprint=fingerprint_tree(model_path, skip=version_names),
        versions=versions,
    )


def list_model_names(repository: Path) -> list[str]:
    """Names of the model dirs in one repository (visible directories only).

    Raises:
        ConfigError: the repository path is missing or unreadable.
    """
    try:
        return sorted(p.name for p in repository.iterdir() if _visible(p.name) and p.is_dir())
    except OSError as e:
        raise ConfigError(f"model repository '{repository}' cannot be read: {e.strerror or e}") from None


def scan_repositories(repositories: Iterable[Path], only: str | None = None) -> RepositoryScan:
    """Scan every repository (or only model `only`); a name in two or more repositories is a duplicate.

    Raises:
        ConfigError: a repository path is missing or unreadable.
    """
    found: dict[str, list[Path]] = {}
    for repo in repositories:
        for name in list_model_names(repo):
            if only is None or name == only:
                found.setdefault(name, []).append(repo)
    models: dict[str, ModelDir] = {}
    duplicates: dict[str, tuple[Path, ...]] = {}
    for name, repos in found.items():
        if len(repos) > 1:
            duplicates[name] = tuple(repos)
        else:
            models[name] = scan_model(repos[0] / name, repos[0])
    return RepositoryScan(models, duplicates)
