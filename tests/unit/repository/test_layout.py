"""Repository scan: model and version dirs, ignored names, duplicates, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import ConfigError
from server.repository.layout import parse_version_name, scan_model, scan_repositories
from tests.unit.repository.model_dirs import bump_mtime, write_config, write_model, write_version


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("12", 12),
        ("0", None),
        ("01", None),
        ("-1", None),
        ("1a", None),
        ("v1", None),
        ("\u0661", None),
    ],
)
def test_version_names_are_positive_integers_without_leading_zero(name: str, expected: int | None) -> None:
    assert parse_version_name(name) == expected


def test_scan_finds_models_and_versions_and_ignores_the_rest(repo: Path) -> None:
    model = write_model(repo, "m", versions=(1, 2, "01", "0", "abc", "3x"))
    write_version(model, ".staging-4")
    (model / "2b").write_text("a file, not a dir")
    write_model(repo, ".hidden_model")
    (repo / "README").write_text("a file at the repository root is not a model")
    (repo / "bare").mkdir()

    scan = scan_repositories([repo])

    assert scan.names() == ["bare", "m"]
    assert sorted(scan.models["m"].versions) == [1, 2]
    assert scan.models["m"].has_config
    assert not scan.models["bare"].has_config
    assert scan.models["bare"].versions == {}
    assert scan.duplicates == {}


def test_a_name_in_two_repositories_is_a_duplicate(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a, "shared")
    write_model(b, "shared")
    write_model(b, "only_b")

    scan = scan_repositories([a, b])

    assert scan.duplicates == {"shared": (a, b)}
    assert set(scan.models) == {"only_b"}
    assert scan.repository_of("shared") == (a, b)
    assert scan.repository_of("only_b") == (b,)


def test_missing_repository_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no_such_repo"):
        scan_repositories([tmp_path / "no_such_repo"])


def test_version_fingerprint_tracks_files_in_that_version_only(repo: Path) -> None:
    model = write_model(repo, "m", versions=(1, 2))
    before = scan_model(model, repo)

    (model / "2" / "weights.txt").write_text("new weights, longer")
    after = scan_model(model, repo)

    assert after.versions[1].fingerprint == before.versions[1].fingerprint
    assert after.versions[2].fingerprint != before.versions[2].fingerprint
    assert after.model_fingerprint == before.model_fingerprint


def test_version_fingerprint_sees_new_files_and_mtime_only_changes(repo: Path) -> None:
    model = write_model(repo, "m")
    first = scan_model(model, repo).versions[1].fingerprint
    (model / "1" / "sub").mkdir()
    (model / "1" / "sub" / "extra.bin").write_bytes(b"x")
    second = scan_model(model, repo).versions[1].fingerprint
    bump_mtime(model / "1" / "weights.txt")
    third = scan_model(model, repo).versions[1].fingerprint

    assert len({first, second, third}) == 3
    assert ("sub/extra.bin", 1) in [(p, s) for p, s, _ in second]


def test_model_fingerprint_covers_config_and_labels_but_not_hidden_staging(repo: Path) -> None:
    model = write_model(repo, "m")
    base = scan_model(model, repo).model_fingerprint

    write_version(model, ".staging-abc", "being written")
    assert scan_model(model, repo).model_fingerprint == base

    write_config(model, 'backend: "probe"\nmax_batch_size: 4\n')
    edited = scan_model(model, repo).model_fingerprint
    assert edited != base

    (model / "labels.txt").write_text("cat\ndog\n")
    assert scan_model(model, repo).model_fingerprint != edited


def test_scan_only_one_model(repo: Path) -> None:
    write_model(repo, "a")
    write_model(repo, "b")
    scan = scan_repositories([repo], only="b")
    assert list(scan.models) == ["b"]
