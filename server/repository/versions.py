"""Version policy: which of a model's version dirs are served (latest N, all, or specific ones)."""

from __future__ import annotations

from collections.abc import Iterable

from server.repository.model_config import VersionPolicy, VersionPolicyKind


def select_versions(policy: VersionPolicy, available: Iterable[int]) -> tuple[int, ...]:
    """The versions to serve among `available`, ascending; specific versions that are absent are left out."""
    present = sorted(set(available))
    if policy.kind is VersionPolicyKind.ALL:
        return tuple(present)
    if policy.kind is VersionPolicyKind.SPECIFIC:
        wanted = set(policy.versions)
        return tuple(v for v in present if v in wanted)
    return tuple(present[-policy.num_versions :]) if present else ()


def missing_versions(policy: VersionPolicy, available: Iterable[int]) -> tuple[int, ...]:
    """Versions a `specific` policy names that have no version dir (always empty for other policies)."""
    if policy.kind is not VersionPolicyKind.SPECIFIC:
        return ()
    present = set(available)
    return tuple(sorted(v for v in set(policy.versions) if v not in present))
