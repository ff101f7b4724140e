"""ModelConfig from its JSON form: sections Hangar does not implement are refused, not ignored."""

from __future__ import annotations

import pytest

from server.errors import ConfigError
from server.protocol.config_text import parse_config_text
from server.repository.model_config import ModelConfig


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ("sequence_batching { max_sequence_idle_microseconds: 5000000 }", "sequence_batching"),
        ('ensemble_scheduling { step [ { model_name: "a" model_version: -1 } ] }', "ensemble_scheduling"),
        ("response_cache { enable: true }", "response_cache"),
    ],
)
def test_unimplemented_sections_are_refused_naming_them(section: str, named: str) -> None:
    text = f'name: "m"\nbackend: "python"\n{section}\n'
    with pytest.raises(ConfigError, match=f"model 'm': {named}"):
        ModelConfig.from_dict(parse_config_text(text, "m/config.pbtxt"))


def test_a_disabled_response_cache_is_accepted() -> None:
    text = 'name: "m"\nbackend: "python"\nresponse_cache { enable: false }\n'
    assert ModelConfig.from_dict(parse_config_text(text, "m/config.pbtxt")).name == "m"
