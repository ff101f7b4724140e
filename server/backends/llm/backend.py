"""LLMBackend: the request flow the pytorch and tensorrtllm backends share; they supply the engine."""

from __future__ import annotations

import asyncio
import itertools
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from server.backends.base import Backend, ModelVersionSpec
from server.backends.llm.active import ActiveRequests, RunningRequest
from server.backends.llm.autocomplete import complete_llm_config
from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.dispatcher import OutputDispatcher
from server.backends.llm.responses import ResponseBuilder, empty_final
from server.backends.llm.session import GenerationSession
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.translation import GenerationRequest, ModelLimits, stop_target, translate
from server.errors import Cancelled, ModelNotReady
from server.repository.model_config import ModelConfig
from server.types import InferRequest, InferResponse, RequestUsage

DeltaSink = Callable[[TokenDelta], None]


class LLMBackend(Backend):
    """Serves both LLM contracts over an engine that streams token deltas.

    A subclass parses its parameters, loads its engine and sets `tokenizer` and `limits` in `load()`,
    then implements `_submit` / `_abort` (and `_finish` when finishing differs from aborting).
    Detokenization, stop strings and response building run on the event loop, never on the engine thread.
    """

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        self.tokenizer: TextTokenizer | None = None
        self.limits: ModelLimits | None = None
        self._active = ActiveRequests()
        self._ids = itertools.count()
        self._dispatcher: OutputDispatcher[TokenDelta] | None = None

    @classmethod
    def auto_complete_config(cls, config: ModelConfig, model_dir: Path) -> ModelConfig:
        cls.check_parameters(config)
        return complete_llm_config(config)

    @classmethod
    @abstractmethod
    def check_parameters(cls, config: ModelConfig) -> None:
        """Raises ConfigError for unknown or malformed `parameters` (before anything loads)."""

    @abstractmethod
    def _submit(self, engine_id: str, gen: GenerationRequest, sink: DeltaSink) -> None:
        """Start generating. `sink` may be called from any thread; its last call carries finished=True.

        Raises:
            HangarError: the request cannot be admitted (ResourceExhausted, Unavailable, ...).
        """

    @abstractmethod
    def _abort(self, engine_id: str) -> None:
        """Stop a request now and free its KV blocks; thread-safe; a no-op once it has finished."""

    def _finish(self, engine_id: str) -> None:
        """End a request that met a stop string or sequence; by default the same as aborting."""
        self._abort(engine_id)

    def fail_in_flight(self, message: str) -> None:
        """End every running request with an error (the engine died); thread-safe."""
        self._active.fail_all(message)

    @property
    def num_in_flight(self) -> int:
        return len(self._active)

    async def infer(self, request: InferRequest) -> AsyncIterator[InferResponse]:
        target = stop_target(request)
        if target is not None:
            self._active.stop(target)
            yield empty_final(request)
            return
        if not self.ready or self.limits is None:
            raise ModelNotReady(f"model '{self.spec.name}' version {self.spec.version} is not ready")
        gen = translate(request, self.tokenizer, self.limits)
        async for response in self._serve(request, gen):
            yield response

    def _sink_for(self, queue: asyncio.Queue[TokenDelta]) -> DeltaSink:
        loop = asyncio.get_running_loop()
        if self._dispatcher is None or self._dispatcher.loop is not loop:
            self._dispatcher = OutputDispatcher(loop)
        dispatcher = self._dispatcher
        return lambda delta: dispatcher.post(queue, delta)

    async def _serve(self, request: InferRequest, gen: GenerationRequest) -> AsyncIterator[InferResponse]:
        engine_id = f"{self.spec.name}/{self.spec.version}/{next(self._ids)}"
        queue: asyncio.Queue[TokenDelta] = asyncio.Queue()
        running = RunningRequest(engine_id, self._abort, self._sink_for(queue))
        builder = ResponseBuilder(request, gen.outputs)
        session = GenerationSession(gen, self.tokenizer, builder)
        self._active.add(request.id, running)
        try:
            self._submit(engine_id, gen, running.sink)
            request.cancel.on_cancel(running.stop)
            while not session.finished:
                delta = await queue.get()
                if delta.finish_reason is FinishReason.CANCELLED and request.cancel.is_cancelled():
                    session.finished, session.finish_reason = True, FinishReason.CANCELLED
                    _record_usage(request, gen, session)
                    yield builder.failure(Cancelled(f"request '{request.id}' was cancelled"))
                    return
                response = session.on_delta(delta)
                if session.stop_engine:
                    self._finish(engine_id)
                if session.finished:
                    _record_usage(request, gen, session)
                if response is not None:
                    yield response
        finally:
            self._active.remove(request.id, running)
            if not session.finished:
                self._abort(engine_id)


def _record_usage(request: InferRequest, gen: GenerationRequest, session: GenerationSession) -> None:
    reason = session.finish_reason or FinishReason.STOP
    request.usage = RequestUsage(len(gen.prompt_token_ids), session.num_output_tokens, reason.value)
