"""builders/pipeline: every build stages in a hidden dir, validates, records a manifest, updates
config.pbtxt and renames; failures and interruptions leave no numbered directory behind."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import pytest

from builders.errors import BuildFailed, BuildInputError, BuildInterrupted
from builders.manifest import MANIFEST_NAME, read_manifest, sha256_file, verify_manifest
from builders.model_lock import ModelLock
from builders.owned_config import OwnedConfig
from builders.pipeline import existing_versions, run_build
from builders.reporter import ProgressMode, Reporter
from builders.target import BuildContext, DropOptions
from tests.unit.builders.file_target import FileTarget

FILES = {"model.py": b"# v\n", "sub/data.bin": b"\x00\x01"}


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


def _build(repo: Path, target: FileTarget, out: io.StringIO, **options: object) -> Path:
    result = run_build(target, DropOptions(repo, "m", **options), Reporter(ProgressMode.OFF, out, out))  # type: ignore[arg-type]
    return result.path


def _entries(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir())


def test_versions_count_up_and_each_holds_its_files_and_manifest(tmp_path: Path, out: io.StringIO) -> None:
    v1 = _build(tmp_path, FileTarget(FILES), out)
    v2 = _build(tmp_path, FileTarget({**FILES, "model.py": b"# v2\n"}), out)
    assert (v1.name, v2.name) == ("1", "2")
    assert _entries(tmp_path / "m") == ["1", "2", "config.pbtxt"]  # no staging, scratch or temp left
    manifest = read_manifest(v2)
    assert manifest["model"] == "m" and manifest["version"] == 2
    assert manifest["builder"]["command"] == "hangar build files"
    assert manifest["source"] == {"kind": "test"} and manifest["parameters"] == {
        "files": ["model.py", "sub/data.bin"]
    }
    assert manifest["files"]["model.py"] == {"sha256": sha256_file(v2 / "model.py"), "bytes": 5}
    assert sorted(manifest["files"]) == ["model.py", "sub/data.bin"]
    assert manifest["config_pbtxt_sha256"] == sha256_file(tmp_path / "m" / "config.pbtxt")
    assert verify_manifest(v2) == []
    (v2 / "model.py").write_bytes(b"tampered")
    assert verify_manifest(v2) == ["sha256 differs: model.py"]
    assert f"dropped model 'm' version 2: {v2}" in out.getvalue()


def test_an_existing_version_is_refused_without_force_and_swapped_with_it(
    tmp_path: Path, out: io.StringIO
) -> None:
    _build(tmp_path, FileTarget(FILES), out)
    with pytest.raises(BuildInputError, match=r"version 1 of model 'm' already exists .* --force"):
        _build(tmp_path, FileTarget({"new": b"x"}), out, version=1)
    inode = (tmp_path / "m" / "1").stat().st_ino
    path = _build(tmp_path, FileTarget({"new": b"x"}), out, version=1, force=True)
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST_NAME, "new"]
    assert path.stat().st_ino != inode  # a new directory took the number, the old one is gone
    assert _entries(tmp_path / "m") == ["1", "config.pbtxt"]
    assert _build(tmp_path, FileTarget(FILES), out, version=7).name == "7"


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (FileTarget(FILES, invalid="the weights are all zero"), "the weights are all zero"),
        (FileTarget(FILES, hook=lambda ctx: _raise(OSError(28, "No space left on device"))), "No space left"),
    ],
)
def test_a_failed_build_drops_nothing(
    tmp_path: Path, out: io.StringIO, target: FileTarget, error: str
) -> None:
    with pytest.raises(BuildFailed, match=error):
        _build(tmp_path, target, out)
    assert _entries(tmp_path / "m") == []  # no version, no staging, no scratch, no config.pbtxt


def _raise(e: BaseException) -> None:
    raise e


def test_ctrl_c_and_sigterm_remove_the_staging_dir(tmp_path: Path, out: io.StringIO) -> None:
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, FileTarget(FILES, hook=lambda ctx: _raise(KeyboardInterrupt())), out)
    assert _entries(tmp_path / "m") == []

    def sigterm(ctx: BuildContext) -> None:
        assert any(ctx.staging.iterdir())
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(BuildInterrupted, match="SIGTERM") as info:
        _build(tmp_path, FileTarget(FILES, hook=sigterm), out)
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert _entries(tmp_path / "m") == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is only installed during a build


def test_stale_staging_of_a_killed_build_is_removed_by_the_next_build(
    tmp_path: Path, out: io.StringIO
) -> None:
    model_dir = tmp_path / "m"
    (model_dir / ".staging-4242-deadbeef" / "sub").mkdir(parents=True)
    (model_dir / ".staging-4242-deadbeef" / "sub" / "half.bin").write_bytes(b"half")
    (model_dir / ".staging-4242-cafe0000-config.pbtxt").write_text("partial")
    _build(tmp_path, FileTarget(FILES), out)
    assert _entries(model_dir) == ["1", "config.pbtxt"]
    assert "removing .staging-4242-deadbeef, left by a build that did not finish" in out.getvalue()


def test_a_live_build_of_the_same_model_is_never_disturbed(tmp_path: Path, out: io.StringIO) -> None:
    model_dir = tmp_path / "m"
    (model_dir / ".staging-4242-live").mkdir(parents=True)
    with ModelLock(model_dir), pytest.raises(BuildInputError, match=r"another build of model 'm' .*pid 4242"):
        _build(tmp_path, FileTarget(FILES), out)
    assert _entries(model_dir) == [".staging-4242-live"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, out: io.StringIO) -> None:
    (tmp_path / "m" / ".staging-1-old").mkdir(parents=True)
    result = run_build(
        FileTarget(FILES), DropOptions(tmp_path, "m", dry_run=True), Reporter(ProgressMode.OFF, out, out)
    )
    text = out.getvalue()
    assert result.dry_run and result.version == 1
    assert "hangar build files: model 'm' version 1" in text
    assert "1. write the files" in text and "2. run the hook" in text
    assert "config.pbtxt: create" in text and '+backend: "python"' in text
    assert "remove stale staging dirs of killed builds: .staging-1-old" in text
    assert text.rstrip().endswith("dry run: nothing was written")
    assert _entries(tmp_path / "m") == [".staging-1-old"]


def test_the_users_config_is_kept_except_the_owned_fields(tmp_path: Path, out: io.StringIO) -> None:
    config = tmp_path / "m" / "config.pbtxt"
    config.parent.mkdir()
    user = '# mine\nname: "m"\nbackend: "onnxruntime"\nmax_batch_size: 4  # keep\n'
    config.write_text(user)
    _build(tmp_path, FileTarget(FILES, owned=OwnedConfig(backend="python")), out)
    assert config.read_text() == '# mine\nname: "m"\nbackend: "python"\nmax_batch_size: 4  # keep\n'
    mtime = config.stat().st_mtime_ns
    _build(tmp_path, FileTarget(FILES, owned=OwnedConfig(backend="python")), out)
    assert config.stat().st_mtime_ns == mtime  # unchanged content is not rewritten (no reload)
    assert "config.pbtxt: keep (unchanged)" in out.getvalue()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ('name: "m"\nmax_batch_size: [\n', r"config.pbtxt"),
        ('name: "other"\n', r"declares name 'other', but the model directory is 'm'"),
    ],
)
def test_a_broken_config_is_refused_before_any_work(
    tmp_path: Path, out: io.StringIO, config: str, error: str
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(config)
    target = FileTarget(FILES)
    with pytest.raises(BuildInputError, match=error):
        _build(tmp_path, target, out)
    assert _entries(tmp_path / "m") == ["config.pbtxt"] and target.validated == 0


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"version": 0}, "--version must be a positive integer, got 0"),
        ({"model": ".hidden"}, "invalid model name '.hidden'"),
        ({"model": "a/b"}, "invalid model name 'a/b'"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, options: dict[str, object], error: str) -> None:
    model = str(options.pop("model", "m"))
    with pytest.raises(BuildInputError, match=error):
        run_build(FileTarget(FILES), DropOptions(tmp_path, model, **options), Reporter(ProgressMode.OFF))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_repository_is_named(tmp_path: Path) -> None:
    with pytest.raises(BuildInputError, match=f"model repository {tmp_path / 'nope'} does not exist"):
        run_build(FileTarget(FILES), DropOptions(tmp_path / "nope", "m"), Reporter(ProgressMode.OFF))


def test_existing_versions_follow_the_servers_rules(tmp_path: Path) -> None:
    for name in ("1", "2", "010", "x", ".staging-1-a"):
        (tmp_path / name).mkdir()
    (tmp_path / "3").write_text("a file, not a version")
    assert sorted(existing_versions(tmp_path)) == [1, 2]
