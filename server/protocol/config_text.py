"""config.pbtxt text and load-override JSON -> the JSON-form dict of ModelConfig; that dict -> protobuf."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, text_format

from server.errors import ConfigError
from server.protocol.gen import model_config_pb2


def _to_dict(message: model_config_pb2.ModelConfig) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """Parses config.pbtxt text; `source` (usually the file path) names the file in errors.

    Returns the JSON form (MessageToDict with proto field names: enums as names, int64 as strings,
    default-valued fields left out) that `ModelConfig.from_dict` reads.
    """
    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        # The parser's message starts with "line:column : ", which locates the error in `source`.
        raise ConfigError(f"failed to parse model config {source}: {e}") from None
    return _to_dict(message)


def parse_config_json(json_text: str) -> dict[str, Any]:
    """Parses the `config` override of RepositoryModelLoad (ModelConfig as protobuf JSON).

    Field names may be proto (`max_batch_size`) or JSON (`maxBatchSize`) spelling; the result is the
    same JSON form as `parse_config_text`. Malformed JSON and unknown fields raise ConfigError naming them.
    """
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"malformed JSON in the 'config' load parameter: {e}") from None
    except TypeError:
        kind = type(json_text).__name__
        raise ConfigError(f"the 'config' load parameter must be a JSON string, got {kind}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the 'config' load parameter must be a JSON object, got {type(data).__name__}")
    return _to_dict(_parse_dict(data, "'config' load parameter"))


def config_to_message(d: Mapping[str, Any]) -> model_config_pb2.ModelConfig:
    """The protobuf ModelConfig for the ModelConfig RPC, from its JSON form (`ModelConfig.to_dict()`)."""
    return _parse_dict(d, "model config")


def _parse_dict(d: Mapping[str, Any], what: str) -> model_config_pb2.ModelConfig:
    message = model_config_pb2.ModelConfig()
    try:
        json_format.ParseDict(dict(d), message)
    except json_format.ParseError as e:
        detail = " ".join(str(e).split())
        raise ConfigError(f"invalid {what}: {detail}") from None
    return message
