"""OnnxRuntimeBackend: ONNX models on onnxruntime, one session per instance, fed by the dynamic batcher."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from server.backends.base import ModelVersionSpec
from server.backends.batched import BatchedBackend
from server.backends.onnxruntime.auto_complete import DEFAULT_MODEL_FILENAME, auto_complete
from server.backends.onnxruntime.session import (
    OrtParameters,
    RunFn,
    create_session,
    datatype_of,
    run_function,
)
from server.errors import BackendError, InvalidInput, LoadError
from server.repository.model_config import ModelConfig
from server.scheduling.batch import Batch
from server.scheduling.inline_gate import inline_gate
from server.scheduling.instances import expand_instances
from server.types import DataType, InferRequest, InferResponse, Tensor, new_tensor


class OnnxRuntimeBackend(BatchedBackend):
    """`platform: "onnxruntime_onnx"` or `backend: "onnxruntime"`: `<version>/model.onnx` by default."""

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        config = spec.config
        self._batched = config.max_batch_size > 0
        self._inputs = {t.name: t for t in config.inputs}
        self._outputs = {t.name: t for t in config.outputs}
        self._all_outputs = tuple(self._outputs)
        # outputs whose arrays go out as they are when their dtype is the configured one
        self._native_outputs = {
            t.name: (t.data_type, t.data_type.numpy_dtype)
            for t in config.outputs
            if t.reshape is None and t.data_type not in (DataType.BYTES, DataType.BF16)
        }
        self._reshaped_inputs = frozenset(t.name for t in config.inputs if t.reshape is not None)
        self._sessions: list[ort.InferenceSession] = []
        self._runs: list[RunFn] = []

    @classmethod
    def auto_complete_config(cls, config: ModelConfig, model_dir: Path) -> ModelConfig:
        return auto_complete(config, model_dir)

    def load(self) -> None:
        spec = self.spec
        params = OrtParameters.from_parameters(spec.config.parameters)
        path = spec.version_dir / (spec.config.default_model_filename or DEFAULT_MODEL_FILENAME)
        instances = expand_instances(spec.config)
        self._sessions = [create_session(path, inst, params) for inst in instances]
        self._check_against_model(self._sessions[0], path)
        self._runs = [run_function(session) for session in self._sessions]
        self._start_batcher(instances, self._execute, inline_gate(spec.config, len(instances)))

    def _release(self) -> None:
        self._sessions = []
        self._runs = []

    def _check_against_model(self, session: ort.InferenceSession, path: Path) -> None:
        """Every configured input and output must exist in the graph with the configured datatype."""
        for what, configured, nodes in (
            ("input", self._inputs, session.get_inputs()),
            ("output", self._outputs, session.get_outputs()),
        ):
            graph = {n.name: n for n in nodes}
            for name, t in configured.items():
                node = graph.get(name)
                if node is None:
                    raise LoadError(
                        f"{what} '{name}' of the config is not in {path} (it has: {', '.join(graph)})"
                    )
                dt = datatype_of(node.type, f"{what} '{name}' of {path}")
                if dt is not t.data_type:
                    raise LoadError(
                        f"{what} '{name}' is {t.data_type.config_name} in the config, {node.type} in {path}"
                    )
        if not self._outputs:
            self._all_outputs = tuple(n.name for n in session.get_outputs())

    def _execute(self, batch: Batch) -> list[InferResponse | None]:
        requests = batch.requests
        first = requests[0]
        if len(requests) == 1:
            feeds = {name: self._feed(name, t.data) for name, t in first.inputs.items()}
        else:
            feeds = {
                name: self._feed(name, np.concatenate([r.inputs[name].data for r in requests]))
                for name in first.inputs
            }
        wanted = self._wanted(requests)
        batch.input_end_ns = time.monotonic_ns()
        arrays = self._runs[batch.instance](list(wanted), feeds, None)
        batch.output_start_ns = time.monotonic_ns()
        produced = dict(zip(wanted, arrays, strict=True))
        responses: list[InferResponse | None] = []
        start = 0
        for request, size in zip(requests, batch.sizes, strict=True):
            rows = slice(start, start + size) if self._batched and len(requests) > 1 else slice(None)
            start += size
            names = self._all_outputs if request.requested_outputs is None else request.requested_outputs
            outputs = [self._output(name, produced[name][rows]) for name in names]
            responses.append(InferResponse(request.model_name, request.model_version, request.id, outputs))
        return responses

    def _wanted(self, requests: list[InferRequest]) -> tuple[str, ...]:
        if len(requests) == 1:
            wanted = requests[0].requested_outputs
            return self._all_outputs if wanted is None else wanted
        if all(r.requested_outputs is None for r in requests):
            return self._all_outputs
        names: dict[str, None] = {}
        for r in requests:
            names.update(
                dict.fromkeys(self._all_outputs if r.requested_outputs is None else r.requested_outputs)
            )
        return tuple(names)

    def _feed(self, name: str, data: np.ndarray) -> np.ndarray:
        if data.dtype.kind != "O" and name not in self._reshaped_inputs:
            return data  # the common case
        config = self._inputs.get(name)
        if config is not None and config.reshape is not None:
            data = data.reshape((data.shape[0], *config.reshape) if self._batched else config.reshape)
        if data.dtype == object:  # onnxruntime string tensors take str, not bytes
            try:
                return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(data)
            except UnicodeDecodeError as e:
                raise InvalidInput(
                    f"a BYTES input is not valid UTF-8, which ONNX strings require: {e}"
                ) from None
        return data

    def _output(self, name: str, array: np.ndarray) -> Tensor:
        native = self._native_outputs.get(name)
        if native is not None and array.dtype is native[1]:  # the common case
            return new_tensor(Tensor, (name, native[0], array))
        config = self._outputs.get(name)
        if array.dtype == object:
            encoded = np.empty(array.shape, dtype=object)
            encoded.reshape(-1)[:] = [s.encode("utf-8") for s in array.reshape(-1)]
            return Tensor(name, DataType.BYTES, encoded)
        if config is None:
            return Tensor.from_numpy(name, array)
        if config.reshape is not None:
            array = array.reshape((array.shape[0], *config.dims) if self._batched else config.dims)
        if config.data_type is DataType.BF16:
            raise BackendError(f"output '{name}' is BF16, which onnxruntime cannot return to Python")
        return Tensor(name, config.data_type, array)
