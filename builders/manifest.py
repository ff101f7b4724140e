"""hangar-manifest.json: what a version was built from, by which builder, with which parameters, and the
sha256 of every file written, so an operator can tell versions apart and check one is intact."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from builders.reporter import Reporter

MANIFEST_NAME = "hangar-manifest.json"
MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


def builder_version() -> str:
    try:
        return metadata.version("hangar")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path, on_bytes: Any = None, *, sync: bool = False) -> str:
    """The file's sha256; with `sync`, also fsyncs it, so what was hashed is what survives a crash."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        if sync:
            os.fsync(f.fileno())
    return digest.hexdigest()


def list_files(root: Path) -> list[Path]:
    """Every regular file under `root` except the manifest, sorted by relative path."""
    files = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST_NAME]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def hash_tree(root: Path, reporter: Reporter) -> dict[str, dict[str, Any]]:
    """{relative path: {"sha256", "bytes"}} for every file under `root` (the manifest excepted)."""
    files = list_files(root)
    total = sum(p.stat().st_size for p in files)
    out: dict[str, dict[str, Any]] = {}
    with reporter.bar(total, "hashing", byte_units=True) as bar:
        for path in files:
            out[path.relative_to(root).as_posix()] = {
                "sha256": sha256_file(path, bar.update, sync=True),
                "bytes": path.stat().st_size,
            }
    return out


def write_manifest(
    root: Path,
    *,
    target: str,
    model: str,
    version: int,
    source: Mapping[str, Any],
    parameters: Mapping[str, Any],
    files: Mapping[str, Mapping[str, Any]],
    config_sha256: str,
) -> Path:
    manifest = {
        "format": MANIFEST_FORMAT,
        "builder": {"command": f"hangar build {target}", "version": builder_version()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "version": version,
        "source": dict(source),
        "parameters": dict(parameters),
        "config_pbtxt_sha256": config_sha256,
        "files": dict(files),
    }
    path = root / MANIFEST_NAME
    with path.open("w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=False, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def read_manifest(version_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((version_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data


def verify_manifest(version_dir: Path) -> list[str]:
    """Problems found comparing the files with the manifest (empty: intact)."""
    listed = read_manifest(version_dir).get("files", {})
    present = {p.relative_to(version_dir).as_posix(): p for p in list_files(version_dir)}
    problems = [f"missing: {name}" for name in sorted(set(listed) - set(present))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(present) - set(listed))]
    for name in sorted(set(listed) & set(present)):
        if sha256_file(present[name]) != listed[name]["sha256"]:
            problems.append(f"sha256 differs: {name}")
    return problems
