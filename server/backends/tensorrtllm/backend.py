"""TensorRTLLMBackend: a TensorRT-LLM engine on its Executor (its own in-flight batching and KV cache)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from server.backends.base import ModelVersionSpec
from server.backends.llm.backend import DeltaSink, LLMBackend
from server.backends.llm.tokenizer import has_tokenizer_files, load_tokenizer
from server.backends.llm.translation import GenerationRequest, ModelLimits
from server.backends.tensorrtllm.bindings import EngineInfo, executor_config, import_executor_module
from server.backends.tensorrtllm.iteration_stats import IterationStatsFolder
from server.backends.tensorrtllm.parameters import TensorRTLLMParameters
from server.backends.tensorrtllm.poller import ResponsePoller
from server.backends.tensorrtllm.requests import to_executor_request
from server.engine.stats import SchedulerStats
from server.errors import BackendError, LoadError, ModelNotReady
from server.repository.model_config import ModelConfig

log = logging.getLogger(__name__)


class TensorRTLLMBackend(LLMBackend):
    """Serves both LLM contracts from a TensorRT-LLM engine directory (tensorrt-llm 1.2.x)."""

    def __init__(self, spec: ModelVersionSpec) -> None:
        super().__init__(spec)
        self.params = TensorRTLLMParameters.from_config(spec.config)
        self._trt: Any = None
        self._executor: Any = None
        self._poller: ResponsePoller | None = None
        self._stats = IterationStatsFolder()

    @classmethod
    def check_parameters(cls, config: ModelConfig) -> None:
        TensorRTLLMParameters.from_config(config)

    def load(self) -> None:
        p = self.params
        engine_dir = p.engine_dir(self.spec.version_dir)
        trt = import_executor_module()
        info = EngineInfo.read(engine_dir)
        self.tokenizer = self._load_tokenizer(engine_dir)
        try:
            executor = trt.Executor(engine_dir, trt.ModelType.DECODER_ONLY, executor_config(trt, p))
        except Exception as e:
            raise LoadError(f"TensorRT-LLM could not open the engine in {engine_dir}: {e}") from e
        poller = ResponsePoller(executor, self._stats, p.stats_check_period_ms / 1000)
        poller.start()
        self._trt, self._executor, self._poller = trt, executor, poller
        self.limits = ModelLimits(
            vocab_size=info.vocab_size,
            max_model_len=info.max_seq_len,
            max_prompt_len=info.max_input_len,
            decoupled=self.spec.config.decoupled,
            exclude_input_in_output=p.exclude_input_in_output,
            eos_token_ids=(self.tokenizer.eos_token_id,)
            if self.tokenizer and self.tokenizer.eos_token_id
            else (),
        )

    def _load_tokenizer(self, engine_dir: Path) -> Any:
        candidates = [Path(self.params.tokenizer_dir)] if self.params.tokenizer_dir else []
        candidates += [engine_dir, self.spec.version_dir]
        for directory in candidates:
            if not directory.is_absolute():
                directory = self.spec.version_dir / directory
            if has_tokenizer_files(directory):
                return load_tokenizer(directory)
        if self.params.tokenizer_dir:
            raise LoadError(f"tokenizer_dir {self.params.tokenizer_dir} holds no tokenizer files")
        log.warning("%s: no tokenizer found; only the token contract (input_ids) is served", self.spec.name)
        return None

    def _submit(self, engine_id: str, gen: GenerationRequest, sink: DeltaSink) -> None:
        poller = self._poller
        if poller is None or not poller.alive:
            raise ModelNotReady(f"model '{self.spec.name}' is not ready: {self._not_ready_reason()}")
        eos = self.tokenizer.eos_token_id if self.tokenizer is not None else None
        request = to_executor_request(self._trt, gen, eos)
        try:
            poller.enqueue(engine_id, request, sink)
        except Exception as e:
            raise BackendError(f"TensorRT-LLM refused the request: {e}") from e

    def _abort(self, engine_id: str) -> None:
        if self._poller is not None:
            self._poller.cancel(engine_id)

    def _not_ready_reason(self) -> str:
        if self._poller is not None and self._poller.error:
            return self._poller.error
        return "not loaded"

    @property
    def ready(self) -> bool:
        return self._poller is not None and self._poller.alive

    def engine_stats(self) -> SchedulerStats | None:
        return self._stats.latest() if self._executor is not None else None

    def unload(self) -> None:
        poller, executor = self._poller, self._executor
        self._poller, self._executor = None, None
        if poller is not None:
            poller.stop()
        if executor is not None:
            try:
                executor.shutdown()
            except Exception:
                log.exception("%s: executor shutdown failed", self.spec.name)
        del executor
        gc.collect()
