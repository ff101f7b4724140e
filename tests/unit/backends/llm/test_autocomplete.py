"""Config auto-complete: both contracts' tensors with TensorRT-LLM's names, user tensors kept."""

from __future__ import annotations

import pytest

from server.backends.llm.autocomplete import DEFAULT_MAX_BATCH_SIZE, complete_llm_config
from server.backends.llm.contracts import Contract, detect_contract
from server.errors import ConfigError, InvalidInput
from server.repository.model_config import ModelConfig
from server.types import DataType
from tests.support.llm_requests import llm_request

MINIMAL = {"name": "llm", "backend": "pytorch", "model_transaction_policy": {"decoupled": True}}


def test_minimal_config_gets_both_contracts() -> None:
    config = complete_llm_config(ModelConfig.from_dict(MINIMAL))
    assert config.max_batch_size == DEFAULT_MAX_BATCH_SIZE
    assert config.decoupled
    spec = {t.name: (t.data_type, t.dims, t.optional) for t in config.inputs}
    assert spec["text_input"] == (DataType.BYTES, (1,), True)
    assert spec["max_tokens"] == (DataType.INT32, (1,), True)
    assert spec["input_ids"] == (DataType.INT32, (-1,), True)
    assert spec["stop_words_list"] == (DataType.INT32, (2, -1), True)
    assert spec["seed"] == (DataType.UINT64, (1,), True)
    for old in ("min_length", "random_seed", "stop", "streaming", "stream", "runtime_top_p"):
        assert old in spec
    outputs = {t.name: (t.data_type, t.dims) for t in config.outputs}
    assert outputs["text_output"] == (DataType.BYTES, (-1,))
    assert outputs["output_ids"] == (DataType.INT32, (-1, -1))
    assert outputs["sequence_length"] == (DataType.INT32, (-1,))
    assert {
        "finish_reason",
        "cum_log_probs",
        "output_log_probs",
        "num_input_tokens",
        "num_output_tokens",
    } <= set(outputs)


def test_round_trips_through_the_config_dict() -> None:
    config = complete_llm_config(ModelConfig.from_dict(MINIMAL))
    again = ModelConfig.from_dict(config.to_dict())
    assert again.inputs == config.inputs and again.outputs == config.outputs
    assert complete_llm_config(again) == again


def test_user_tensors_and_batch_size_are_kept() -> None:
    raw = {
        **MINIMAL,
        "max_batch_size": 8,
        "input": [{"name": "text_input", "data_type": "TYPE_STRING", "dims": ["-1"]}],
        "output": [{"name": "extra_out", "data_type": "TYPE_FP32", "dims": ["4"]}],
    }
    config = complete_llm_config(ModelConfig.from_dict(raw))
    assert config.max_batch_size == 8
    assert config.inputs[0].dims == (-1,) and not config.inputs[0].optional
    assert [t.name for t in config.inputs].count("text_input") == 1
    assert config.outputs[0].name == "extra_out"


def test_conflicting_user_type_is_a_config_error() -> None:
    raw = {**MINIMAL, "input": [{"name": "text_input", "data_type": "TYPE_INT32", "dims": ["1"]}]}
    with pytest.raises(ConfigError, match=r"text_input.*TYPE_INT32"):
        complete_llm_config(ModelConfig.from_dict(raw))


def test_contract_detection() -> None:
    assert detect_contract(llm_request(text_input="a")) is Contract.TEXT
    assert detect_contract(llm_request(input_ids=[1])) is Contract.TOKEN
    with pytest.raises(InvalidInput, match="inputs sent: max_tokens"):
        detect_contract(llm_request(max_tokens=1))
