"""Request-vs-config validation: names, datatypes, shapes, batch size, reshape, Triton's wording."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from server.errors import InvalidInput
from server.repository.model_config import ModelConfig
from server.types import DataType, InferRequest, Tensor
from server.validation import request_prefix, validate_request


def _config(max_batch_size: int = 0, **extra: Any) -> ModelConfig:
    d: dict[str, Any] = {
        "name": "add_sub",
        "max_batch_size": max_batch_size,
        "input": [
            {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": ["16"]},
            {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": ["16"]},
        ],
        "output": [
            {"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": ["16"]},
            {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": ["16"]},
        ],
    }
    d.update(extra)
    return ModelConfig.from_dict(d)


def _request(rid: str = "r1", outputs: tuple[str, ...] | None = None, **arrays: np.ndarray) -> InferRequest:
    inputs = {n: Tensor(n, DataType.from_numpy(a.dtype), a) for n, a in arrays.items()}
    return InferRequest("add_sub", "", rid, inputs, requested_outputs=outputs)


def _fp32(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _error(request: InferRequest, config: ModelConfig) -> str:
    with pytest.raises(InvalidInput) as info:
        validate_request(request, config)
    return str(info.value)


def test_a_valid_request_is_returned_unchanged() -> None:
    request = _request(INPUT0=_fp32(16), INPUT1=_fp32(16), outputs=("OUTPUT1",))
    assert validate_request(request, _config()) is request
    batched = _request(INPUT0=_fp32(3, 16), INPUT1=_fp32(3, 16))
    assert validate_request(batched, _config(max_batch_size=4)) is batched


def test_request_prefix_uses_id_unknown_for_an_empty_id() -> None:
    assert request_prefix("") == "[request id: <id_unknown>] "
    assert request_prefix("abc") == "[request id: abc] "


def test_unknown_input() -> None:
    text = _error(_request(INPUT0=_fp32(16), X=_fp32(16)), _config())
    assert text == "unexpected inference input 'X' for model 'add_sub'"


def test_unknown_requested_output() -> None:
    text = _error(_request(INPUT0=_fp32(16), INPUT1=_fp32(16), outputs=("OUT9",)), _config())
    assert text == "unexpected inference output 'OUT9' for model 'add_sub'"


def test_missing_required_input_lists_what_was_given_and_missing() -> None:
    text = _error(_request(INPUT0=_fp32(16)), _config())
    assert text == (
        "[request id: r1] expected 2 inputs but got 1 inputs for model 'add_sub'. Got inputs ['INPUT0'], "
        "but missing required inputs ['INPUT1']. Please provide all required inputs."
    )


def test_too_many_inputs() -> None:
    text = _error(_request(INPUT0=_fp32(16), INPUT1=_fp32(16), X=_fp32(1)), _config())
    assert "expected 2 inputs but got 3 inputs for model 'add_sub'" in text


def _optional_config() -> ModelConfig:
    return ModelConfig.from_dict(
        {
            "name": "llm",
            "input": [
                {"name": "text_input", "data_type": "TYPE_STRING", "dims": ["1"]},
                {"name": "max_tokens", "data_type": "TYPE_INT32", "dims": ["1"], "optional": True},
                {"name": "stream", "data_type": "TYPE_BOOL", "dims": ["1"], "optional": True},
            ],
            "output": [{"name": "text_output", "data_type": "TYPE_STRING", "dims": ["-1"]}],
        }
    )


def test_optional_inputs_may_be_left_out() -> None:
    text = np.array([b"hi"], dtype=object)
    request = InferRequest("llm", "", "", {"text_input": Tensor("text_input", DataType.BYTES, text)})
    assert validate_request(request, _optional_config()) is request


def test_missing_required_input_among_optional_ones() -> None:
    inputs = {
        "max_tokens": Tensor("max_tokens", DataType.INT32, np.array([5], dtype=np.int32)),
        "stream": Tensor("stream", DataType.BOOL, np.array([True])),
    }
    text = _error(InferRequest("llm", "", "", inputs), _optional_config())
    assert text.startswith("[request id: <id_unknown>] expected number of inputs between 1 and 3 but got 2")
    assert "missing required inputs ['text_input']" in text


def test_datatype_mismatch_uses_api_names() -> None:
    request = _request(INPUT0=np.zeros(16, dtype=np.int32), INPUT1=_fp32(16))
    text = _error(request, _config())
    assert text == (
        "[request id: r1] inference input 'INPUT0' data-type is 'INT32', but model 'add_sub' expects 'FP32'"
    )


def test_bytes_datatype_is_called_bytes() -> None:
    request = InferRequest(
        "llm", "", "x", {"text_input": Tensor("text_input", DataType.INT32, np.zeros(1, np.int32))}
    )
    assert "data-type is 'INT32', but model 'llm' expects 'BYTES'" in _error(request, _optional_config())


@pytest.mark.parametrize(
    ("mbs", "shape", "expected", "got"),
    [
        (0, (8,), "[16]", "[8]"),
        (0, (1, 16), "[16]", "[1,16]"),
        (4, (1, 8), "[-1,16]", "[1,8]"),
        (4, (2, 16, 1), "[-1,16]", "[2,16,1]"),
    ],
)
def test_shape_mismatch(mbs: int, shape: tuple[int, ...], expected: str, got: str) -> None:
    request = _request(INPUT0=_fp32(*shape), INPUT1=_fp32(*shape))
    text = _error(request, _config(max_batch_size=mbs))
    assert text.startswith(
        "[request id: r1] unexpected shape for input 'INPUT0' for model 'add_sub'. "
        f"Expected {expected}, got {got}."
    )
    assert ("NOTE: Setting a non-zero max_batch_size" in text) == (mbs > 0)


def test_variable_dims_accept_any_size() -> None:
    config = _config(
        input=[
            {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": ["-1", "4"]},
            {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": ["-1"]},
        ]
    )
    request = _request(INPUT0=_fp32(7, 4), INPUT1=_fp32(1))
    assert validate_request(request, config) is request
    assert "Expected [-1,4], got [7,5]" in _error(_request(INPUT0=_fp32(7, 5), INPUT1=_fp32(1)), config)


@pytest.mark.parametrize(
    ("shapes", "fragment"),
    [
        (((5, 16), (5, 16)), "inference request batch-size must be <= 4 for 'add_sub'"),
        (((0, 16), (0, 16)), "inference request batch-size must be >= 1 for 'add_sub'"),
        (((2, 16), (3, 16)), "input 'INPUT1' batch size does not match other inputs for 'add_sub'"),
    ],
)
def test_batch_size_limits(shapes: tuple[tuple[int, ...], ...], fragment: str) -> None:
    request = _request(INPUT0=_fp32(*shapes[0]), INPUT1=_fp32(*shapes[1]))
    text = _error(request, _config(max_batch_size=4))
    assert text == f"[request id: r1] {fragment}"


def test_scalar_input_to_a_batching_model() -> None:
    request = _request(INPUT0=np.float32(1).reshape(()), INPUT1=_fp32(1, 16))
    assert "input 'INPUT0' has no shape but model requires batch dimension" in _error(
        request, _config(max_batch_size=4)
    )


def test_reshape_is_applied_with_and_without_batch() -> None:
    inputs = [
        {
            "name": "INPUT0",
            "data_type": "TYPE_FP32",
            "dims": ["-1", "4"],
            "reshape": {"shape": ["2", "-1", "2"]},
        },
        {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": ["1"], "reshape": {"shape": []}},
    ]
    request = _request(INPUT0=np.arange(12, dtype=np.float32).reshape(3, 4), INPUT1=_fp32(1))
    out = validate_request(request, _config(input=inputs))
    assert out.inputs["INPUT0"].data.shape == (2, 3, 2)
    assert out.inputs["INPUT1"].data.shape == ()
    np.testing.assert_array_equal(out.inputs["INPUT0"].data.ravel(), np.arange(12))
    assert request.inputs["INPUT0"].data.shape == (3, 4)  # the original request is untouched
    batched = _request(INPUT0=_fp32(2, 3, 4), INPUT1=_fp32(2, 1))
    out = validate_request(batched, _config(max_batch_size=2, input=inputs))
    assert out.inputs["INPUT0"].data.shape == (2, 2, 3, 2)
    assert out.inputs["INPUT1"].data.shape == (2,)


def test_reshape_that_cannot_hold_the_data() -> None:
    inputs = [
        {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": ["4"], "reshape": {"shape": ["3"]}},
        {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": ["1"]},
    ]
    text = _error(_request(INPUT0=_fp32(4), INPUT1=_fp32(1)), _config(input=inputs))
    assert "cannot take the configured reshape [3]" in text


def test_shape_tensors_keep_their_shape_under_batching() -> None:
    inputs = [
        {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": ["16"]},
        {"name": "INPUT1", "data_type": "TYPE_INT32", "dims": ["2"], "is_shape_tensor": True},
    ]
    request = _request(INPUT0=_fp32(3, 16), INPUT1=np.array([3, 16], dtype=np.int32))
    assert validate_request(request, _config(max_batch_size=4, input=inputs)) is request
