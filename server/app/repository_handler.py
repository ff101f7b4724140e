"""RepositoryIndex / RepositoryModelLoad / RepositoryModelUnload, with the control-mode rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.errors import InvalidInput
from server.protocol.gen import grpc_service_pb2 as pb
from server.repository.load_overrides import LoadParameter
from server.repository.manager import ModelManager

UNLOAD_DEPENDENTS = "unload_dependents"


class RepositoryHandler:
    """Control-mode rules (load/unload only in explicit mode, else UNAVAILABLE) live in the manager."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def index(self, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
        entries = self._manager.index(request.repository_name, ready_only=request.ready)
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=e.name, version=e.version, state=e.state, reason=e.reason
                )
                for e in entries
            ]
        )

    async def load(self, request: pb.RepositoryModelLoadRequest) -> pb.RepositoryModelLoadResponse:
        await self._manager.load(request.model_name, repository_parameters(request.parameters))
        return pb.RepositoryModelLoadResponse()

    async def unload(self, request: pb.RepositoryModelUnloadRequest) -> pb.RepositoryModelUnloadResponse:
        params = repository_parameters(request.parameters)
        unknown = sorted(set(params) - {UNLOAD_DEPENDENTS})
        if unknown:
            raise InvalidInput(
                f"unrecognized unload parameter '{unknown[0]}' for model '{request.model_name}' "
                f"(only '{UNLOAD_DEPENDENTS}' is accepted)"
            )
        dependents = params.get(UNLOAD_DEPENDENTS, False)
        if not isinstance(dependents, bool):
            raise InvalidInput(
                f"unload parameter '{UNLOAD_DEPENDENTS}' must be a bool_param, "
                f"got {type(dependents).__name__} {dependents!r}"
            )
        await self._manager.unload(request.model_name, unload_dependents=dependents)
        return pb.RepositoryModelUnloadResponse()


def repository_parameters(params: Mapping[str, Any]) -> dict[str, LoadParameter]:
    """ModelRepositoryParameter map -> Python values (bool, int, str or bytes); an unset one is refused."""
    out: dict[str, LoadParameter] = {}
    for key, param in params.items():
        kind = param.WhichOneof("parameter_choice")
        if kind is None:
            raise InvalidInput(f"repository parameter '{key}' has no value set")
        out[key] = getattr(param, kind)
    return out
