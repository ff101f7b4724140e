"""Loading tensor-model backends straight from a model directory, and running requests through them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from server.backends.base import Backend, BackendRegistry, ModelVersionSpec
from server.repository.config_source import read_config_dict
from server.repository.model_config import ModelConfig
from server.types import InferRequest, InferResponse, Tensor

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_REPO = REPO_ROOT / "model_repo"


def load_backend(model_dir: Path, version: int = 1, config: ModelConfig | None = None) -> Backend:
    """Parse config.pbtxt (unless `config` is given), auto-complete it, construct and load the backend."""
    if config is None:
        config = ModelConfig.from_dict(read_config_dict(model_dir, None), default_name=model_dir.name)
    cls = BackendRegistry().get(config.backend_name)
    config = cls.auto_complete_config(config, model_dir)
    backend = cls(ModelVersionSpec(config.name, version, config, model_dir, model_dir / str(version)))
    backend.load()
    return backend


def make_request(
    model: str,
    inputs: Mapping[str, np.ndarray],
    request_id: str = "r",
    outputs: tuple[str, ...] | None = None,
    parameters: Mapping[str, bool | int | float | str] | None = None,
) -> InferRequest:
    tensors = {name: Tensor.from_numpy(name, np.asarray(a)) for name, a in inputs.items()}
    return InferRequest(model, "1", request_id, tensors, outputs, dict(parameters or {}))


async def collect(backend: Backend, request: InferRequest, timeout_s: float = 30.0) -> list[InferResponse]:
    """Every response of one request, in order (the last one final)."""

    async def drain() -> list[InferResponse]:
        return [r async for r in backend.infer(request)]

    return await asyncio.wait_for(drain(), timeout_s)


def run_requests(backend: Backend, *requests: InferRequest) -> list[list[InferResponse]]:
    """Submit all requests at once on a fresh event loop; their responses, request by request."""

    async def main() -> list[list[InferResponse]]:
        return list(await asyncio.gather(*(collect(backend, r) for r in requests)))

    return asyncio.run(main())


def outputs_of(response: InferResponse) -> dict[str, np.ndarray]:
    assert response.error is None, response.error
    return {t.name: t.data for t in response.outputs}
