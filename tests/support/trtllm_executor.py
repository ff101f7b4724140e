"""A stand-in for `tensorrt_llm.bindings.executor` (TensorRT-LLM 1.2) that runs without a GPU.

It follows the documented Executor contract (PROTOCOL.md 9.5; names from the nanobind bindings):
`Executor(model_path, ModelType, ExecutorConfig)` reads the engine dir's config.json and runs an
iteration loop on its own thread, one token per active request per iteration; `enqueue_request`
returns increasing ids; `await_responses(timeout)` returns Response objects (`request_id`,
`has_error()`, `error_msg`, `result` with `is_final`, `output_token_ids` per beam (only the new tokens
when streaming), `log_probs`, `cum_log_probs`, `finish_reasons`); `cancel_request` produces a final
CANCELLED response; `get_latest_iteration_stats()` drains IterationStats with the documented names.
Tokens come from `next_token` (a hash of the sequence so far), so tests can predict them.

Tests load it as the real package: `with fake_tensorrt_llm(tmp_path) as trt:` puts a `tensorrt_llm`
package on sys.path whose `bindings.executor` is this module, for that test only.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import json
import sys
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from tests.support.trtllm_bindings import (
    BatchingType,
    CapacitySchedulerPolicy,
    CommunicationMode,
    CommunicationType,
    DecodingConfig,
    DecodingMode,
    ExecutorConfig,
    ExtendedRuntimePerfKnobConfig,
    KvCacheConfig,
    OutputConfig,
    ParallelConfig,
    PeftCacheConfig,
    Request,
    SamplingConfig,
    SchedulerConfig,
)

__all__ = [
    "BatchingType", "CapacitySchedulerPolicy", "CommunicationMode", "CommunicationType", "DecodingConfig",
    "DecodingMode", "Executor", "ExecutorConfig", "ExtendedRuntimePerfKnobConfig", "FinishReason",
    "InflightBatchingStats", "IterationStats", "KvCacheConfig", "KvCacheStats", "ModelType", "OutputConfig",
    "ParallelConfig", "PeftCacheConfig", "Request", "Response", "Result", "SamplingConfig", "SchedulerConfig",
]  # fmt: skip

TOKENS_PER_BLOCK = 32
FIRST_TOKEN = 3
"""Generated ids start here, so the tokenizer's specials (0..2) appear only when asked for (end_id)."""


class ModelType(enum.Enum):
    DECODER_ONLY = 0
    ENCODER_ONLY = 1
    ENCODER_DECODER = 2


class FinishReason(enum.Enum):
    NOT_FINISHED = 0
    END_ID = 1
    STOP_WORDS = 2
    LENGTH = 3
    TIMED_OUT = 4
    CANCELLED = 5


def next_token(ids: Sequence[int], vocab_size: int) -> int:
    return FIRST_TOKEN + zlib.crc32(repr(list(ids)).encode()) % (vocab_size - FIRST_TOKEN)


def fake_logprob(token: int) -> float:
    return -((token % 7) + 1) / 10.0


class Result:
    def __init__(self) -> None:
        self.is_final = False
        self.output_token_ids: list[list[int]] = []
        self.cum_log_probs: list[float] | None = None
        self.log_probs: list[list[float]] | None = None
        self.context_logits = None
        self.generation_logits = None
        self.finish_reasons: list[FinishReason] = []
        self.sequence_index = 0
        self.is_sequence_final = False
        self.decoding_iter = 0
        self.request_perf_metrics = None


class Response:
    def __init__(self, request_id: int, result: Result | None = None, error_msg: str = "") -> None:
        self._request_id = request_id
        self._result = result
        self._error = error_msg

    @property
    def request_id(self) -> int:
        return self._request_id

    @property
    def client_id(self) -> int | None:
        return None

    def has_error(self) -> bool:
        return bool(self._error)

    @property
    def error_msg(self) -> str:
        return self._error

    @property
    def result(self) -> Result:
        if self._result is None:
            raise RuntimeError("Cannot get the result for a response with an error")
        return self._result


class KvCacheStats:
    def __init__(self) -> None:
        self.max_num_blocks = self.free_num_blocks = self.used_num_blocks = 0
        self.tokens_per_block = TOKENS_PER_BLOCK
        self.alloc_total_blocks = self.alloc_new_blocks = self.reused_blocks = self.missed_blocks = 0
        self.cache_hit_rate = 0.0


class InflightBatchingStats:
    def __init__(self) -> None:
        self.num_scheduled_requests = self.num_context_requests = self.num_gen_requests = 0
        self.num_paused_requests = self.num_ctx_tokens = self.micro_batch_id = 0
        self.avg_num_decoded_tokens_per_iter = 0.0


class IterationStats:
    def __init__(self) -> None:
        self.timestamp = ""
        self.iter = self.num_new_active_requests = self.num_active_requests = 0
        self.num_queued_requests = self.num_completed_requests = self.max_num_active_requests = 0
        self.iter_latency_ms = self.new_active_requests_queue_latency_ms = 0.0
        self.gpu_mem_usage = self.cpu_mem_usage = self.pinned_mem_usage = 0
        self.kv_cache_stats: KvCacheStats | None = KvCacheStats()
        self.cross_kv_cache_stats = None
        self.static_batching_stats = None
        self.inflight_batching_stats: InflightBatchingStats | None = InflightBatchingStats()
        self.specdec_stats = None

    def to_json_str(self) -> str:
        return json.dumps({"iter": self.iter, "numActiveRequests": self.num_active_requests})


class _Sequence:
    def __init__(self, request_id: int, request: Request) -> None:
        self.id = request_id
        self.request = request
        self.generated: list[int] = []
        self.sent = 0
        self.cancelled = False
        self.started = False


class Executor:
    """One fake engine: an iteration thread over the active requests (max `max_batch_size`, default 8)."""

    instances: ClassVar[list[Executor]] = []

    def __init__(self, model_path: Any, model_type: ModelType, executor_config: ExecutorConfig) -> None:
        path = Path(model_path) / "config.json"
        if not path.is_file():
            raise RuntimeError(f"[TensorRT-LLM][ERROR] Cannot open engine config {path}")
        engine = json.loads(path.read_text())
        self.vocab_size = int(engine["pretrained_config"]["vocab_size"])
        self.max_seq_len = int(engine["build_config"]["max_seq_len"])
        self.model_type = model_type
        self.config = executor_config
        kv = executor_config.kv_cache_config
        self.max_blocks = (kv.max_tokens or 64 * TOKENS_PER_BLOCK) // TOKENS_PER_BLOCK
        self.max_active = executor_config.max_batch_size or 8
        self.before_iteration: Any = None
        """Test hook, called with the iteration number on the executor thread before each iteration."""
        self._cond = threading.Condition()
        self._queued: deque[_Sequence] = deque()
        self._active: dict[int, _Sequence] = {}
        self._responses: deque[Response] = deque()
        self._stats: deque[IterationStats] = deque(maxlen=executor_config.iter_stats_max_iterations or 1000)
        self._next_id = 1
        self._iter = 0
        self._missed = 0
        self._fail: str | None = None
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name="fake-trtllm-executor", daemon=True)
        self._thread.start()
        Executor.instances.append(self)

    # ---- client side ------------------------------------------------------------------------------

    def enqueue_request(self, request: Request) -> int:
        with self._cond:
            if self._shutdown:
                raise RuntimeError("[TensorRT-LLM][ERROR] the executor is shut down")
            total = len(request.input_token_ids) + request.max_tokens
            if total > self.max_seq_len:
                raise RuntimeError(
                    f"[TensorRT-LLM][ERROR] prompt ({len(request.input_token_ids)}) + max_tokens "
                    f"({request.max_tokens}) exceeds max_seq_len ({self.max_seq_len})"
                )
            request_id, self._next_id = self._next_id, self._next_id + 1
            self._queued.append(_Sequence(request_id, request))
            self._cond.notify_all()
            return request_id

    def enqueue_requests(self, requests: Sequence[Request]) -> list[int]:
        return [self.enqueue_request(r) for r in requests]

    def cancel_request(self, id: int) -> None:
        with self._cond:
            for seq in [*self._queued, *self._active.values()]:
                if seq.id == id:
                    seq.cancelled = True
            self._cond.notify_all()

    def await_responses(self, timeout: timedelta | None = None) -> list[Response]:
        with self._cond:
            seconds = None if timeout is None else timeout.total_seconds()
            self._cond.wait_for(lambda: self._responses or self._fail or self._shutdown, seconds)
            if self._fail:
                raise RuntimeError(self._fail)
            out = list(self._responses)
            self._responses.clear()
            return out

    def get_num_responses_ready(self, id: int | None = None) -> int:
        with self._cond:
            return sum(1 for r in self._responses if id is None or r.request_id == id)

    def get_latest_iteration_stats(self) -> list[IterationStats]:
        with self._cond:
            out = list(self._stats)
            self._stats.clear()
            return out

    def get_latest_request_stats(self) -> list[Any]:
        return []

    def can_enqueue_requests(self) -> bool:
        return not self._shutdown

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(10)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def fail(self, message: str) -> None:
        """Test hook: the next await_responses raises, as a crashed executor's would."""
        with self._cond:
            self._fail = message
            self._cond.notify_all()

    @property
    def num_active(self) -> int:
        with self._cond:
            return len(self._active) + len(self._queued)

    # ---- executor thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queued or self._active or self._shutdown)
                if self._shutdown:
                    return
                iteration = self._iter
            hook = self.before_iteration
            if hook is not None:
                hook(iteration)
            with self._cond:
                self._iteration()
                self._cond.notify_all()

    def _iteration(self) -> None:
        stats = IterationStats()
        ifb = stats.inflight_batching_stats
        assert ifb is not None
        for seq in [s for s in self._queued if s.cancelled]:
            self._queued.remove(seq)
            self._finish(seq, FinishReason.CANCELLED)
        while self._queued and len(self._active) < self.max_active:
            seq = self._queued.popleft()
            self._active[seq.id] = seq
            stats.num_new_active_requests += 1
        for seq in list(self._active.values()):
            if seq.cancelled:
                self._finish(seq, FinishReason.CANCELLED)
                continue
            if not seq.started:
                seq.started = True
                ifb.num_context_requests += 1
                ifb.num_ctx_tokens += len(seq.request.input_token_ids)
                self._missed += -(-len(seq.request.input_token_ids) // TOKENS_PER_BLOCK)
            else:
                ifb.num_gen_requests += 1
            self._step(seq)
        self._record(stats)

    def _step(self, seq: _Sequence) -> None:
        req = seq.request
        token = next_token([*req.input_token_ids, *seq.generated], self.vocab_size)
        min_tokens = req.sampling_config.min_tokens or 0
        if req.end_id is not None and token == req.end_id and len(seq.generated) >= min_tokens:
            self._finish(seq, FinishReason.END_ID)
            return
        seq.generated.append(token)
        stops = req.stop_words or []
        if any(len(w) and seq.generated[-len(w) :] == list(w) for w in stops):
            self._finish(seq, FinishReason.STOP_WORDS)
        elif len(seq.generated) >= req.max_tokens:
            self._finish(seq, FinishReason.LENGTH)
        elif req.streaming:
            self._respond(seq, final=False, reason=FinishReason.NOT_FINISHED)

    def _finish(self, seq: _Sequence, reason: FinishReason) -> None:
        self._active.pop(seq.id, None)
        self._respond(seq, final=True, reason=reason)

    def _respond(self, seq: _Sequence, final: bool, reason: FinishReason) -> None:
        req = seq.request
        result = Result()
        result.is_final = result.is_sequence_final = final
        if req.streaming:
            ids = seq.generated[seq.sent :]
        elif req.output_config.exclude_input_from_output:
            ids = list(seq.generated)
        else:
            ids = [*req.input_token_ids, *seq.generated]
        seq.sent = len(seq.generated)
        result.output_token_ids = [ids]
        result.finish_reasons = [reason]
        if req.output_config.return_log_probs:
            new = seq.generated[len(seq.generated) - len(ids) :] if req.streaming else seq.generated
            result.log_probs = [[fake_logprob(t) for t in new]]
            result.cum_log_probs = [sum(fake_logprob(t) for t in seq.generated)]
        self._responses.append(Response(seq.id, result))

    def _record(self, stats: IterationStats) -> None:
        stats.iter = self._iter
        self._iter += 1
        stats.num_active_requests = len(self._active)
        stats.num_queued_requests = len(self._queued)
        stats.max_num_active_requests = self.max_active
        kv = stats.kv_cache_stats
        assert kv is not None
        lengths = [len(s.request.input_token_ids) + len(s.generated) for s in self._active.values()]
        used = sum(-(-n // TOKENS_PER_BLOCK) for n in lengths)
        kv.max_num_blocks, kv.used_num_blocks = self.max_blocks, used
        kv.free_num_blocks = self.max_blocks - used
        kv.missed_blocks = self._missed
        self._stats.append(stats)


def write_engine_dir(directory: Path, vocab_size: int, max_seq_len: int = 512) -> Path:
    """An engine directory as trtllm-build leaves it, as far as config.json goes (no rank0.engine)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "version": "1.2.0",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "float16",
            "vocab_size": vocab_size,
        },
        "build_config": {"max_batch_size": 8, "max_input_len": max_seq_len // 2, "max_seq_len": max_seq_len},
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@contextlib.contextmanager
def fake_tensorrt_llm(tmp_path: Path) -> Iterator[ModuleType]:
    """Make `import tensorrt_llm.bindings.executor` find this module, for the duration of the block."""
    root = tmp_path / "fake_site"
    package = root / "tensorrt_llm" / "bindings"
    package.mkdir(parents=True, exist_ok=True)
    (root / "tensorrt_llm" / "__init__.py").write_text('__version__ = "1.2.0+hangar.fake"\n')
    (package / "__init__.py").write_text("")
    (package / "executor.py").write_text("from tests.support.trtllm_executor import *  # noqa: F403\n")
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("tensorrt_llm.bindings.executor")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
            del sys.modules[name]
        Executor.instances.clear()
