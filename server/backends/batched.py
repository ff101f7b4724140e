"""BatchedBackend: what every tensor backend shares: its executes run through one DynamicBatcher."""

from __future__ import annotations

from collections.abc import Sequence

from server.backends.base import Backend, ModelVersionSpec
from server.errors import ModelNotReady
from server.scheduling.batch import ExecuteFn
from server.scheduling.batch_plan import BatchingPolicy
from server.scheduling.dynamic_batcher import DynamicBatcher
from server.scheduling.inline_gate import InlineGate
from server.scheduling.instances import InstanceSpec
from server.scheduling.response_channel import ResponseChannel
from server.types import InferRequest, InferResponse


class BatchedBackend(Backend):
    """Subclasses load their instances, call `_start_batcher`, and free them in `_release`."""

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        self._batcher: DynamicBatcher | None = None

    def _start_batcher(
        self, instances: Sequence[InstanceSpec], execute: ExecuteFn, inline: InlineGate | None
    ) -> None:
        spec = self.spec
        self._batcher = DynamicBatcher(
            spec.name,
            BatchingPolicy.from_config(spec.config),
            [f"{inst.name}-v{spec.version}" for inst in instances],
            execute,
            spec.stats,
            inline,
        )
        self._batcher.start()

    def infer(self, request: InferRequest) -> ResponseChannel:
        if self._batcher is None:
            raise ModelNotReady(f"model '{self.spec.name}' version {self.spec.version} is not loaded")
        return self._batcher.submit(request)

    def infer_unary(self, request: InferRequest) -> InferResponse | ResponseChannel:
        batcher = self._batcher
        if batcher is None:
            return self.infer(request)  # raises ModelNotReady
        answer = batcher.run_now(request)  # an idle, cheap model answers right here
        return batcher.submit(request) if answer is None else answer

    def unload(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._release()

    def _release(self) -> None:
        """Free the instances (after the batcher has stopped executing)."""

    @property
    def ready(self) -> bool:
        return self._batcher is not None and self._batcher.alive
