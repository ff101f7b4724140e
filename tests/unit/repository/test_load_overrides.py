"""RepositoryModelLoad parameters: validation (before anything is written) and the override dir."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from server.errors import InvalidInput, LoadError
from server.repository.load_overrides import parse_load_parameters, write_override_dir

CONFIG = '{"backend": "probe"}'


@pytest.mark.parametrize(
    "key",
    [
        "file:../1/model.py",
        "file:1/../../etc/passwd",
        "file:/etc/passwd",
        "file:1//model.py",
        "file:1/./model.py",
        "file:1/sub/..",
        "file:1\\..\\model.py",
        "file:model.py",
        "file:01/model.py",
        "file:0/model.py",
        "file:1",
        "file:",
        "file:1/a\x00b",
    ],
)
def test_unsafe_or_malformed_file_paths_are_invalid_input(key: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_load_parameters({"config": CONFIG, key: b"x"})
    assert repr(key)[1:-1] in repr(e.value.message) or key in e.value.message


def test_good_file_paths_are_accepted() -> None:
    overrides = parse_load_parameters({"config": CONFIG, "file:1/model.py": b"a", "file:2/sub/w.bin": b"b"})
    assert overrides.config_json == CONFIG
    assert overrides.files == {PurePosixPath("1/model.py"): b"a", PurePosixPath("2/sub/w.bin"): b"b"}


def test_files_require_config() -> None:
    with pytest.raises(InvalidInput, match="require a 'config'"):
        parse_load_parameters({"file:1/model.py": b"x"})


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"colour": "red"}, ["'colour'", "string_param"]),
        ({"retries": 3}, ["'retries'", "int64_param"]),
        ({"force": True}, ["'force'", "bool_param"]),
        ({"blob": b"x"}, ["'blob'", "bytes_param"]),
        ({"config": b"{}"}, ["'config'", "bytes_param"]),
        ({"config": CONFIG, "file:1/model.py": "text"}, ["'file:1/model.py'", "string_param"]),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key_and_type(params: dict, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_load_parameters(params)
    for word in words:
        assert word in e.value.message


def test_a_path_used_as_both_file_and_directory_is_refused() -> None:
    with pytest.raises(InvalidInput, match="file:1/a"):
        parse_load_parameters({"config": CONFIG, "file:1/a": b"x", "file:1/a/b": b"y"})


def test_override_dir_is_fresh_named_after_the_model_and_removed_on_last_release() -> None:
    override = write_override_dir("m", {PurePosixPath("1/model.py"): b"code", PurePosixPath("1/d/w"): b"w"})
    assert override.model_dir.name == "m"
    assert (override.model_dir / "1" / "model.py").read_bytes() == b"code"
    assert (override.model_dir / "1" / "d" / "w").read_bytes() == b"w"
    override.retain()
    override.release()
    assert override.root.exists()
    override.release()
    assert not override.root.exists()


def test_unwritable_override_is_a_load_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    # A name with a NUL cannot be created: the write fails after mkdtemp, so cleanup must run.
    with pytest.raises(LoadError, match="cannot write"):
        write_override_dir("m", {PurePosixPath("1/ok"): b"x", PurePosixPath("1/bad\x00name"): b"y"})
    assert list(scratch.iterdir()) == []
