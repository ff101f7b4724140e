"""Checks a decoded request against its model's config (names, datatypes, shapes, batch) and applies reshape.

Runs on every request, so it only compares small tuples; error texts follow Triton core (infer_request.cc,
model.cc) because clients match on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from server.errors import InvalidInput
from server.repository.model_config import ModelConfig, TensorConfig
from server.types import InferRequest, Tensor

_BATCH_NOTE = (
    "NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
    "prepended to each input shape. If you want to specify the full shape including the batch dim in "
    "your input dims config, try setting max_batch_size to zero. See the model configuration docs for "
    "more info on max_batch_size."
)


def request_prefix(request_id: str) -> str:
    """Triton's request tag at the start of request errors: `[request id: <id>] `."""
    return f"[request id: {request_id or '<id_unknown>'}] "


def _dims(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


class _ConfigView:
    """What every request's checks read from a config, computed once per config object."""

    __slots__ = ("by_name", "fixed", "max_batch", "n_inputs", "outputs", "required")

    def __init__(self, config: ModelConfig) -> None:
        self.by_name = {t.name: t for t in config.inputs}
        self.n_inputs = len(config.inputs)
        self.required = tuple(t.name for t in config.inputs if not t.optional)
        self.outputs = frozenset(t.name for t in config.outputs)
        self.max_batch = config.max_batch_size
        # name -> (datatype, dims) when every input has fixed dims, no reshape and is no shape tensor:
        # then a request either matches exactly (checked in one pass) or gets the full check.
        plain = all(-1 not in t.dims and t.reshape is None and not t.is_shape_tensor for t in config.inputs)
        self.fixed = {t.name: (t.data_type, t.dims) for t in config.inputs} if plain else None


def _fits(request: InferRequest, view: _ConfigView) -> bool:
    """The common request, in one pass: every input given, with its datatype and dims, and one batch
    size in 1..max_batch_size. False means the full check decides (and words any error)."""
    fixed, given, max_batch = view.fixed, request.inputs, view.max_batch
    if fixed is None or len(given) != len(fixed):
        return False
    batch = -1
    for name, tensor in given.items():
        spec = fixed.get(name)
        if spec is None or tensor.datatype is not spec[0]:
            return False
        shape = tensor.data.shape
        if not max_batch:
            if shape != spec[1]:
                return False
        elif not shape or shape[1:] != spec[1] or (batch != -1 and shape[0] != batch):
            return False
        else:
            batch = shape[0]
    return not max_batch or 1 <= batch <= max_batch


# id(config) -> (config, view); the config is kept so a reused id never matches a dead config's view.
_VIEWS: dict[int, tuple[ModelConfig, _ConfigView]] = {}
_MAX_VIEWS = 1024


def _view(config: ModelConfig) -> _ConfigView:
    entry = _VIEWS.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1]
    if len(_VIEWS) >= _MAX_VIEWS:  # configs of unloaded versions: drop them all, live ones come back
        _VIEWS.clear()
    view = _ConfigView(config)
    _VIEWS[id(config)] = (config, view)
    return view


def validate_request(request: InferRequest, config: ModelConfig) -> InferRequest:
    """Returns `request` if it fits `config`, a copy with reshaped inputs if a `reshape` applies.

    Raises InvalidInput for an unknown input or requested output, a missing required input, a datatype
    or shape mismatch, or a batch size outside 1..max_batch_size.
    """
    view = _view(config)
    if request.requested_outputs is not None:
        for out in request.requested_outputs:
            if out not in view.outputs:
                raise InvalidInput(
                    f"unexpected inference output '{out}' for model '{config.name or request.model_name}'"
                )
    if _fits(request, view):
        return request
    model, prefix = config.name or request.model_name, request_prefix(request.id)
    by_name = view.by_name
    given = request.inputs
    # Every configured input, given once (names are dict keys): nothing to report, skip the full check.
    if len(given) != view.n_inputs or not all(n in by_name for n in given):
        _check_input_names(request, config, by_name, model, prefix)
    batch = _batch_size(request, config, by_name, model, prefix)
    reshaped: dict[str, Tensor] | None = None
    for name, tensor in request.inputs.items():
        tc = by_name[name]
        if tensor.datatype is not tc.data_type:
            raise InvalidInput(
                f"{prefix}inference input '{name}' data-type is '{tensor.datatype.value}', "
                f"but model '{model}' expects '{tc.data_type.value}'"
            )
        shape = tensor.data.shape
        batched = batch > 0 and not tc.is_shape_tensor
        _check_shape(name, shape[1:] if batched else shape, shape, tc, config, model, prefix)
        if tc.reshape is not None:
            new_shape = _reshaped(shape[1:] if batched else shape, tc)
            full = (shape[0], *new_shape) if batched else new_shape
            if full != shape:
                reshaped = dict(request.inputs) if reshaped is None else reshaped
                reshaped[name] = Tensor(name, tensor.datatype, _reshape(tensor, full, model, prefix))
    return request if reshaped is None else replace(request, inputs=reshaped)


def _check_input_names(
    request: InferRequest, config: ModelConfig, by_name: dict[str, TensorConfig], model: str, prefix: str
) -> None:
    required = [t.name for t in config.inputs if not t.optional]
    given = request.inputs
    missing = [n for n in required if n not in given]
    # Triton checks only the count; a missing required input among known names slips through it.
    wrong_count = len(given) > len(config.inputs) or len(given) < len(required)
    if wrong_count or (missing and all(n in by_name for n in given)):
        got = "[" + ",".join(f"'{n}'" for n in given) + "]"
        lacking = "[" + ",".join(f"'{n}'" for n in missing) + "]"
        if len(required) == len(config.inputs):
            expected = f"expected {len(config.inputs)} inputs"
        else:
            expected = f"expected number of inputs between {len(required)} and {len(config.inputs)}"
        raise InvalidInput(
            f"{prefix}{expected} but got {len(given)} inputs for model '{model}'. Got inputs {got}, "
            f"but missing required inputs {lacking}. Please provide all required inputs."
        )
    for name in given:
        if name not in by_name:
            raise InvalidInput(f"unexpected inference input '{name}' for model '{model}'")


def _batch_size(
    request: InferRequest, config: ModelConfig, by_name: dict[str, TensorConfig], model: str, prefix: str
) -> int:
    """The request's batch size (first dim of every batched input); 0 when the model does not batch."""
    if config.max_batch_size == 0:
        return 0
    batch = -1
    for name, tensor in request.inputs.items():
        if by_name[name].is_shape_tensor:
            continue
        shape = tensor.data.shape
        if not shape:
            raise InvalidInput(
                f"{prefix}input '{name}' has no shape but model requires batch dimension for '{model}'"
            )
        if batch == -1:
            batch = shape[0]
        elif shape[0] != batch:
            raise InvalidInput(f"{prefix}input '{name}' batch size does not match other inputs for '{model}'")
    if batch > config.max_batch_size:
        raise InvalidInput(
            f"{prefix}inference request batch-size must be <= {config.max_batch_size} for '{model}'"
        )
    if batch == 0:
        raise InvalidInput(f"{prefix}inference request batch-size must be >= 1 for '{model}'")
    return max(batch, 0)


def _check_shape(
    name: str,
    dims: tuple[int, ...],
    full: tuple[int, ...],
    tc: TensorConfig,
    config: ModelConfig,
    model: str,
    prefix: str,
) -> None:
    expected = tc.dims
    if dims == expected:
        return
    if len(dims) == len(expected) and all(e == -1 or e == d for e, d in zip(expected, dims, strict=True)):
        return
    batched = config.max_batch_size > 0 and not tc.is_shape_tensor
    shown = (-1, *expected) if batched else expected
    note = _BATCH_NOTE if config.max_batch_size > 0 else ""
    raise InvalidInput(
        f"{prefix}unexpected shape for input '{name}' for model '{model}'. Expected {_dims(shown)}, "
        f"got {_dims(full)}. {note}".rstrip()
    )


def _reshaped(dims: tuple[int, ...], tc: TensorConfig) -> tuple[int, ...]:
    """Config `reshape`, its -1 entries filled, in order, by the request's values of the variable dims."""
    assert tc.reshape is not None
    variable = iter([d for d, e in zip(dims, tc.dims, strict=True) if e == -1])
    return tuple(next(variable, -1) if r == -1 else r for r in tc.reshape)


def _reshape(tensor: Tensor, shape: tuple[int, ...], model: str, prefix: str) -> np.ndarray:
    try:
        return tensor.data.reshape(shape)
    except ValueError:
        raise InvalidInput(
            f"{prefix}input '{tensor.name}' for model '{model}' of shape {_dims(tensor.data.shape)} "
            f"cannot take the configured reshape {_dims(shape)}"
        ) from None
