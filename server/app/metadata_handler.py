"""Liveness, readiness, server and model metadata, model config: the read-only RPCs about the server."""

from __future__ import annotations

from server import __version__
from server.app.server_state import ServerState
from server.errors import InvalidInput, ModelNotFound
from server.protocol.config_text import config_to_message
from server.protocol.gen import grpc_service_pb2 as pb
from server.repository.model_config import ModelConfig, TensorConfig

SERVER_NAME = "triton"
SERVER_VERSION = "2.73.0"
"""The Triton version we answer as (clients check it); Hangar's own is in the extensions and the logs."""
EXTENSIONS = (
    "classification",
    "sequence",
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "system_shared_memory",
    "cuda_shared_memory",
    "binary_tensor_data",
    "parameters",
    "statistics",
    "trace",
    "logging",
    f"hangar/{__version__}",
)


class MetadataHandler:
    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._manager = state.manager
        self._server_metadata = pb.ServerMetadataResponse(
            name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS
        )

    def server_live(self) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._state.live)

    def server_ready(self) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._state.ready)

    def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        # Unknown or unloaded models answer OK with ready=false (PROTOCOL.md 1.7), not an error.
        ready = self._manager.model_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)

    def server_metadata(self) -> pb.ServerMetadataResponse:
        return self._server_metadata

    def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        config = self._config(request.name, request.version)
        batch = (-1,) if config.max_batch_size > 0 else ()
        return pb.ModelMetadataResponse(
            name=config.name or request.name,
            versions=[str(v) for v in self._manager.ready_versions(request.name)],
            platform=config.platform or config.backend_name,
            inputs=[_tensor_metadata(t, batch) for t in config.inputs],
            outputs=[_tensor_metadata(t, batch) for t in config.outputs],
        )

    def model_config(self, request: pb.ModelConfigRequest) -> pb.ModelConfigResponse:
        config = self._config(request.name, request.version)
        return pb.ModelConfigResponse(config=config_to_message(config.to_dict()))

    def _config(self, name: str, version: str) -> ModelConfig:
        try:
            return self._manager.config(name, version)
        except ModelNotFound as e:
            # Triton answers metadata and config requests for unknown models INVALID_ARGUMENT.
            raise InvalidInput(e.message) from e


def _tensor_metadata(t: TensorConfig, batch: tuple[int, ...]) -> pb.ModelMetadataResponse.TensorMetadata:
    # `dims` is the shape clients send; `reshape` is internal to the model.
    return pb.ModelMetadataResponse.TensorMetadata(
        name=t.name, datatype=t.data_type.value, shape=[*batch, *t.dims]
    )
