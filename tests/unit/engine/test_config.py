"""EngineConfig: ranges and cross-field checks name the offending values; from_runner."""

from __future__ import annotations

import pytest

from server.engine.config import EngineConfig
from server.errors import ConfigError
from tests.support.fake_runner import FakeRunner


def test_defaults_and_from_runner() -> None:
    runner = FakeRunner(num_blocks=40, block_size=8, max_model_len=300)
    config = EngineConfig.from_runner(runner, max_num_seqs=4)
    assert (config.num_blocks, config.block_size, config.max_model_len) == (40, 8, 300)
    assert (config.max_num_seqs, config.max_num_batched_tokens, config.enable_prefix_caching) == (
        4,
        2048,
        True,
    )
    assert config.kv_capacity_tokens == 320


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_blocks": 0}, "num_blocks must be an integer >= 1, got 0"),
        ({"block_size": -4}, "block_size .* got -4"),
        ({"max_num_seqs": True}, "max_num_seqs .* got True"),
        ({"max_model_len": 1.5}, "max_model_len .* got 1.5"),
        ({"enable_prefix_caching": "yes"}, "enable_prefix_caching must be a bool, got 'yes'"),
        (
            {"max_num_seqs": 64, "max_num_batched_tokens": 32},
            r"max_num_batched_tokens \(32\) .* max_num_seqs \(64\)",
        ),
    ],
)
def test_invalid_values_are_refused_by_name(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"num_blocks": 8, "max_model_len": 128}
    with pytest.raises(ConfigError, match=match):
        EngineConfig(**{**base, **kwargs})  # type: ignore[arg-type]


def test_from_runner_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown engine config keys \\['max_batch'\\]"):
        EngineConfig.from_runner(FakeRunner(), max_batch=4)
