"""config.pbtxt text, load-override JSON and the ModelConfig message, to and from the JSON-form dict."""

from __future__ import annotations

import pytest

from server.errors import ConfigError
from server.protocol.config_text import config_to_message, parse_config_json, parse_config_text
from server.repository.model_config import ModelConfig, VersionPolicyKind
from server.types import DataType

PBTXT = """
# An LLM-style config with most of what Hangar interprets.
name: "llm"
backend: "pytorch"
max_batch_size: 8
version_policy: { specific: { versions: [1, 3] } }
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
  { name: "image" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape: { shape: [ 2, -1, 2 ] } }
]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] label_filename: "labels.txt" } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
dynamic_batching {
  preferred_batch_size: [ 2, 4 ]
  max_queue_delay_microseconds: 100
  default_queue_policy { max_queue_size: 16 timeout_action: DELAY default_timeout_microseconds: 5000 }
}
model_transaction_policy { decoupled: true }
parameters: { key: "model_path" value: { string_value: "/models/x" } }
parameters [ { key: "dtype" value: { string_value: "float32" } } ]
optimization { cuda { graphs: true } }
model_metrics {
  metric_control: [ { metric_identifier: { family: "nv_inference_first_response_histogram_ms" }
                      histogram_options: { buckets: [ 1, 2, 4 ] } } ]
}
"""


def test_text_parses_to_the_json_form() -> None:
    d = parse_config_text(PBTXT, "/repo/llm/config.pbtxt")
    assert d["name"] == "llm"
    assert d["max_batch_size"] == 8
    assert d["input"][0] == {"name": "text_input", "data_type": "TYPE_STRING", "dims": ["1"]}
    assert d["input"][1]["optional"] is True
    assert d["version_policy"] == {"specific": {"versions": ["1", "3"]}}
    assert d["parameters"] == {
        "model_path": {"string_value": "/models/x"},
        "dtype": {"string_value": "float32"},
    }
    assert d["model_transaction_policy"] == {"decoupled": True}
    assert d["optimization"] == {"cuda": {"graphs": True}}


def test_empty_text_is_an_empty_config() -> None:
    assert parse_config_text("", "x/config.pbtxt") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name: "a"\nmax_batch_size: x', "2:17"),
        ('name: "a"\nunknown_field: 1', 'no field named "unknown_field"'),
        ('input [ { name: "x" data_type: TYPE_FOO } ]', "TYPE_FOO"),
        ('name: "a"', None),
        ("name: ", "1:7"),
        ("input { name: 'x' ", "1:"),
    ],
)
def test_text_syntax_errors_name_the_file_and_position(text: str, fragment: str | None) -> None:
    if fragment is None:
        assert parse_config_text(text, "f") == {"name": "a"}
        return
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "/repo/m/config.pbtxt")
    assert "/repo/m/config.pbtxt" in str(info.value)
    assert fragment in str(info.value)


def test_json_override_accepts_proto_and_json_names() -> None:
    snake = parse_config_json('{"name": "m", "max_batch_size": 2, "backend": "python",'
                              ' "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]}')
    camel = parse_config_json('{"name": "m", "maxBatchSize": 2, "backend": "python",'
                              ' "input": [{"name": "X", "dataType": "TYPE_FP32", "dims": ["4"]}]}')
    assert snake == camel
    assert snake["input"][0]["dims"] == ["4"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": "a",', "malformed JSON"),
        ("", "malformed JSON"),
        ('{"nam": 1}', '"nam"'),
        ("[1, 2]", "JSON object, got list"),
        ('{"max_batch_size": "x"}', "max_batch_size"),
        ('{"input": [{"name": "x", "data_type": "TYPE_Q"}]}', "TYPE_Q"),
        ('{"input": [{"name": "x", "shape": [1]}]}', '"shape"'),
    ],
)
def test_bad_json_override_names_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_json(text)
    assert fragment in str(info.value)
    assert "'config'" in str(info.value)


def test_json_override_that_is_not_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a JSON string"):
        parse_config_json(None)  # type: ignore[arg-type]


def test_round_trip_text_to_domain_to_message_keeps_fields() -> None:
    d = parse_config_text(PBTXT, "llm/config.pbtxt")
    config = ModelConfig.from_dict(d)
    assert config.decoupled is True
    assert config.version_policy.kind is VersionPolicyKind.SPECIFIC
    assert config.inputs[0].data_type is DataType.BYTES
    msg = config_to_message(config.to_dict())
    assert msg.name == "llm" and msg.backend == "pytorch" and msg.max_batch_size == 8
    assert list(msg.version_policy.specific.versions) == [1, 3]
    assert [(i.name, i.data_type, list(i.dims), i.optional) for i in msg.input] == [
        ("text_input", 13, [1], False),
        ("max_tokens", 8, [1], True),
        ("image", 11, [-1, 4], False),
    ]
    assert list(msg.input[2].reshape.shape) == [2, -1, 2]
    assert msg.output[0].label_filename == "labels.txt"
    assert (msg.instance_group[0].count, msg.instance_group[0].kind) == (2, 2)
    assert list(msg.dynamic_batching.preferred_batch_size) == [2, 4]
    assert msg.dynamic_batching.max_queue_delay_microseconds == 100
    policy = msg.dynamic_batching.default_queue_policy
    assert (policy.max_queue_size, policy.timeout_action) == (16, 1)
    assert policy.default_timeout_microseconds == 5000
    assert msg.model_transaction_policy.decoupled is True
    params = {k: v.string_value for k, v in msg.parameters.items()}
    assert params == {"model_path": "/models/x", "dtype": "float32"}
    assert msg.optimization.cuda.graphs is True  # unmodelled: rides along in `extra`
    assert list(msg.model_metrics.metric_control[0].histogram_options.buckets) == [1.0, 2.0, 4.0]
    # And the message's own JSON form parses back to the same domain config.
    again = ModelConfig.from_dict(parse_config_text(str(msg), "again"))
    assert again == config


def test_config_to_message_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        config_to_message({"name": "m", "bogus": 1})
