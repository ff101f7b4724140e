"""Version policy: latest N, all, specific."""

from __future__ import annotations

from server.repository.model_config import VersionPolicy, VersionPolicyKind
from server.repository.versions import missing_versions, select_versions

AVAILABLE = (3, 1, 7, 2)


def test_latest_defaults_to_the_highest_version() -> None:
    assert select_versions(VersionPolicy(), AVAILABLE) == (7,)


def test_latest_n_picks_the_n_highest_ascending() -> None:
    policy = VersionPolicy(VersionPolicyKind.LATEST, num_versions=2)
    assert select_versions(policy, AVAILABLE) == (3, 7)
    assert select_versions(VersionPolicy(num_versions=10), AVAILABLE) == (1, 2, 3, 7)


def test_all_serves_every_version() -> None:
    assert select_versions(VersionPolicy(VersionPolicyKind.ALL), AVAILABLE) == (1, 2, 3, 7)


def test_specific_serves_the_listed_versions_that_exist_and_reports_missing_ones() -> None:
    policy = VersionPolicy(VersionPolicyKind.SPECIFIC, versions=(2, 7, 9))
    assert select_versions(policy, AVAILABLE) == (2, 7)
    assert missing_versions(policy, AVAILABLE) == (9,)
    assert missing_versions(VersionPolicy(), AVAILABLE) == ()


def test_no_versions_serves_nothing() -> None:
    assert select_versions(VersionPolicy(), ()) == ()
    assert select_versions(VersionPolicy(VersionPolicyKind.ALL), ()) == ()
