"""A real in-process Hangar with its telemetry on (metrics on a free port, tracing as configured), and the
client workloads the telemetry tests drive through tritonclient."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from server.telemetry.logging import LogSettings
from server.telemetry.service import TelemetryService, create_telemetry
from tests.support.server import PROJECT_ROOT, RunningServer, make_config
from tests.support.tensors import fp32, infer_input

MODEL_REPO = PROJECT_ROOT / "model_repo"
TENSOR_MODELS = ("add_sub", "streaming")


@contextlib.contextmanager
def telemetry_server(
    trace_config: tuple[str, ...] = (), load_models: tuple[str, ...] = TENSOR_MODELS, **overrides: Any
) -> Iterator[tuple[RunningServer, TelemetryService]]:
    """The example repository's tensor models behind a server with metrics on 127.0.0.1:<free port>."""
    config = make_config(
        overrides.pop("repositories", MODEL_REPO), model_control_mode="explicit",
        load_models=load_models, allow_metrics=True, metrics_address="127.0.0.1", metrics_port=0,
        trace_config=trace_config, **overrides,
    )  # fmt: skip
    logs_before = LogSettings.installed()
    telemetry = create_telemetry(config, env={})
    srv = RunningServer(config, None, telemetry)
    try:
        srv.start()
        yield srv, telemetry
    finally:
        srv.stop()
        installed = LogSettings.installed()
        if logs_before is None and installed is not None:  # leave the root logger as it was found
            installed.close()


def metrics_port(telemetry: TelemetryService) -> int:
    assert telemetry.metrics is not None, "metrics are off"
    return telemetry.metrics.port


def add_sub(client: grpcclient.InferenceServerClient, request_id: str = "", **kwargs: Any) -> float:
    """One add_sub inference; returns the client-observed seconds."""
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    t0 = time.perf_counter()
    result = client.infer("add_sub", [fp32("INPUT0", a), fp32("INPUT1", a)], request_id=request_id, **kwargs)
    elapsed = time.perf_counter() - t0
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + a)
    return elapsed


@dataclass
class StreamResult:
    responses: int
    first_s: float
    total_s: float


def stream(
    client: grpcclient.InferenceServerClient, n: int, delay_ms: int, request_id: str = "",
    headers: Mapping[str, str] | None = None,
) -> StreamResult:  # fmt: skip
    """One ModelStreamInfer request to `streaming` (n responses, delay_ms apart), read to its final flag."""
    results: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result), headers=headers)
    try:
        inputs = [infer_input("IN", np.array([n], dtype=np.int32)),
                  infer_input("DELAY_MS", np.array([delay_ms], dtype=np.int32))]  # fmt: skip
        t0 = time.perf_counter()
        client.async_stream_infer(
            "streaming", inputs, request_id=request_id, enable_empty_final_response=True
        )
        count, first = 0, 0.0
        while True:
            item = results.get(timeout=30)
            if isinstance(item, Exception):
                raise item
            response = item.get_response()
            if response.outputs:
                count += 1
                first = first or time.perf_counter() - t0
            if response.parameters["triton_final_response"].bool_param:
                return StreamResult(count, first, time.perf_counter() - t0)
    finally:
        client.stop_stream()


LLM_CONFIG = """name: "llm"
backend: "pytorch"
model_transaction_policy { decoupled: true }
parameters { key: "device" value: { string_value: "cpu" } }
parameters { key: "num_blocks" value: { string_value: "64" } }
parameters { key: "max_model_len" value: { string_value: "256" } }
"""


def write_llm_repository(repository: Path) -> Path:
    """`repository/llm`: a tiny seeded Llama on Hangar's PyTorch engine (CPU, 64 KV blocks)."""
    from tests.support.tiny_llm import build_tiny_llm  # torch + transformers: only for the LLM tests

    model = repository / "llm"
    build_tiny_llm(model / "1", "llama")
    (model / "config.pbtxt").write_text(LLM_CONFIG)
    return repository


@dataclass
class Generation:
    prompt_tokens: int
    output_tokens: int
    first_s: float
    total_s: float


def generate(
    client: grpcclient.InferenceServerClient, prompt: list[int], tokens: int, request_id: str
) -> Generation:
    """One streaming token-contract request (exactly `tokens` new tokens); counts what the client received."""
    results: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result))
    try:

        def scalar(name: str, value: Any, dtype: Any) -> grpcclient.InferInput:
            return infer_input(name, np.array([[value]], dtype=dtype))

        inputs = [
            infer_input("input_ids", np.array([prompt], dtype=np.int32)),
            scalar("input_lengths", len(prompt), np.int32), scalar("request_output_len", tokens, np.int32),
            scalar("min_tokens", tokens, np.int32), scalar("streaming", True, bool),
        ]  # fmt: skip
        outputs = [
            grpcclient.InferRequestedOutput("output_ids"),
            grpcclient.InferRequestedOutput("sequence_length"),
        ]
        t0 = time.perf_counter()
        client.async_stream_infer("llm", inputs, outputs=outputs, request_id=request_id,
                                  enable_empty_final_response=True)  # fmt: skip
        received, first = 0, 0.0
        while True:
            item = results.get(timeout=60)
            if isinstance(item, Exception):
                raise item
            ids = item.as_numpy("output_ids")
            if ids is not None and (ids >= 0).sum():
                received += int((ids >= 0).sum())
                first = first or time.perf_counter() - t0
            if item.get_response().parameters["triton_final_response"].bool_param:
                return Generation(len(prompt), received, first, time.perf_counter() - t0)
    finally:
        client.stop_stream()
