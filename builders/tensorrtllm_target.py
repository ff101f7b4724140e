"""`hangar build tensorrtllm`: a Hugging Face checkpoint converted and built into a TensorRT-LLM engine
(paged KV cache, in-flight batching), dropped with its tokenizer and a config.pbtxt for the tensorrtllm
backend. TensorRT-LLM itself is optional: without it the command says so (and --dry-run still plans)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from builders.command_runner import format_command, run_command
from builders.engine_dir_check import engine_problems
from builders.engine_limits import EngineLimits
from builders.errors import BuildFailed, BuildInputError, BuildUnavailable
from builders.file_copy import copy_files
from builders.hf_checkpoint import HFCheckpoint, inspect_checkpoint
from builders.owned_config import OwnedConfig
from builders.target import BuildContext, Step, Target
from builders.trtllm_commands import BUILD_TOOL, FAMILIES, Tools, build_argv, convert_argv, find_tools
from server.backends.llm.tokenizer import load_tokenizer
from server.backends.tensorrtllm.bindings import INSTALL_HINT, EngineInfo
from server.errors import HangarError

ENGINE_DIR = "engine"
TOKENIZER_DIR = "tokenizer"
POLICIES = ("guaranteed_no_evict", "max_utilization")


@dataclass(frozen=True)
class RuntimeSettings:
    """Serving knobs written to config.pbtxt; None: keep the file's value (default on a new file)."""

    kv_cache_free_gpu_mem_fraction: float | None = None
    enable_kv_cache_reuse: bool | None = None
    batch_scheduler_policy: str | None = None

    def check(self) -> None:
        fraction = self.kv_cache_free_gpu_mem_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise BuildInputError(f"--kv-cache-free-gpu-mem-fraction must be in (0, 1], got {fraction}")
        policy = self.batch_scheduler_policy
        if policy is not None and policy not in POLICIES:
            raise BuildInputError(
                f"--batch-scheduler-policy must be one of {', '.join(POLICIES)}, got {policy!r}"
            )


_RUNTIME_DEFAULTS = {
    "kv_cache_free_gpu_mem_fraction": "0.9",
    "enable_kv_cache_reuse": "true",
    "batch_scheduler_policy": "guaranteed_no_evict",
}


class TensorRTLLMTarget(Target):
    name = "tensorrtllm"

    def __init__(
        self,
        checkpoint: Path,
        limits: EngineLimits,
        runtime: RuntimeSettings,
        convert_script: Path | None = None,
        examples_dir: Path | None = None,
    ) -> None:
        self.checkpoint_path = checkpoint
        self.limits = limits
        self.runtime = runtime
        self._convert_script = convert_script
        self._examples_dir = examples_dir
        self._checkpoint: HFCheckpoint | None = None
        self._tools: Tools | None = None

    @property
    def checkpoint(self) -> HFCheckpoint:
        if self._checkpoint is None:
            self._checkpoint = inspect_checkpoint(self.checkpoint_path, allow_torch_bin=True)
        return self._checkpoint

    @property
    def family(self) -> str:
        archs = self.checkpoint.architectures
        for arch in archs:
            if arch in FAMILIES:
                return FAMILIES[arch]
        raise BuildInputError(
            f"architecture {', '.join(archs) or '(none in config.json)'} of {self.checkpoint.path} is not "
            f"supported by the tensorrtllm target (TensorRT-LLM 1.2 engines: {', '.join(FAMILIES)}); "
            "serve it with `hangar build pytorch` instead"
        )

    @property
    def tools(self) -> Tools:
        if self._tools is None:
            self._tools = find_tools(self.family, self._convert_script, self._examples_dir)
        return self._tools

    def check(self) -> None:
        _ = self.family
        self.limits.check(self.checkpoint.config)
        self.runtime.check()

    def check_runnable(self) -> None:
        if importlib.util.find_spec("tensorrt_llm") is None:
            raise BuildUnavailable(f"{INSTALL_HINT}; `hangar build tensorrtllm --dry-run` shows the plan")
        self.tools.require()

    def steps(self) -> list[Step]:
        return [
            Step(f"copy the tokenizer and model config into {TOKENIZER_DIR}/", self._tokenizer),
            Step(f"convert the checkpoint ({self.family} convert_checkpoint.py)", self._convert,
                 lambda ctx: [f"$ {format_command(self._convert_argv(ctx))}"]),
            Step(f"build the engine into {ENGINE_DIR}/ ({BUILD_TOOL})", self._build,
                 lambda ctx: [f"$ {format_command(self._build_argv(ctx))}"]),
        ]  # fmt: skip

    def _convert_argv(self, ctx: BuildContext) -> list[str]:
        script = self.tools.convert_script or (
            self.tools.tried[0] if self.tools.tried else "convert_checkpoint.py"
        )
        return convert_argv(script, self.checkpoint.path.resolve(), ctx.scratch / "checkpoint", self.limits)

    def _build_argv(self, ctx: BuildContext) -> list[str]:
        tool = self.tools.build_tool or BUILD_TOOL
        return build_argv(tool, ctx.scratch / "checkpoint", ctx.staging / ENGINE_DIR, self.limits)

    def _tokenizer(self, ctx: BuildContext) -> None:
        (ctx.staging / TOKENIZER_DIR).mkdir()
        ckpt = self.checkpoint
        copy_files(ckpt.path, ctx.staging / TOKENIZER_DIR, ckpt.small_files, ctx.reporter, "tokenizer")

    def _convert(self, ctx: BuildContext) -> None:
        ctx.scratch_dir()
        run_command(self._convert_argv(ctx), ctx.reporter, "convert_checkpoint.py")

    def _build(self, ctx: BuildContext) -> None:
        run_command(self._build_argv(ctx), ctx.reporter, BUILD_TOOL)

    def validation(self) -> str:
        return "check the engine's config.json against the limits, the rank engines and the tokenizer"

    def validate(self, ctx: BuildContext) -> None:
        engine = ctx.staging / ENGINE_DIR
        problems = engine_problems(engine, self.limits)
        if problems:
            raise BuildFailed(f"{BUILD_TOOL} did not produce the engine asked for: {'; '.join(problems)}")
        try:
            tokenizer = load_tokenizer(ctx.staging / TOKENIZER_DIR)
        except HangarError as e:
            raise BuildFailed(f"the copied tokenizer does not load: {e.message}") from None
        vocab = EngineInfo.read(engine).vocab_size
        if tokenizer.vocab_size > vocab:
            raise BuildFailed(
                f"the tokenizer has {tokenizer.vocab_size} tokens, the engine's vocab_size is {vocab}"
            )

    def owned_config(self) -> OwnedConfig:
        owned = {
            "gpt_model_type": "inflight_fused_batching",
            "gpt_model_path": ENGINE_DIR,
            "tokenizer_dir": TOKENIZER_DIR,
            "max_beam_width": str(self.limits.max_beam_width),
        }
        r = self.runtime
        given = {
            "kv_cache_free_gpu_mem_fraction": _text(r.kv_cache_free_gpu_mem_fraction),
            "enable_kv_cache_reuse": _text(r.enable_kv_cache_reuse),
            "batch_scheduler_policy": r.batch_scheduler_policy,
            "enable_chunked_context": "true" if self.limits.enable_chunked_context else None,
        }
        owned |= {k: v for k, v in given.items() if v is not None}
        defaults = {k: v for k, v in _RUNTIME_DEFAULTS.items() if given[k] is None}
        return OwnedConfig(
            backend="tensorrtllm", decoupled=True, parameters=owned, default_parameters=defaults
        )

    def source(self) -> Mapping[str, Any]:
        return self.checkpoint.manifest_source()

    def parameters(self) -> Mapping[str, Any]:
        return {
            **self.limits.as_dict(),
            "family": self.family,
            "convert_script": str(self.tools.convert_script),
            "build_tool": str(self.tools.build_tool),
            "tensorrt_llm_version": _trtllm_version(),
        }


def _text(value: float | bool | None) -> str | None:
    """A config.pbtxt parameter string (booleans as true/false)."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _trtllm_version() -> str | None:
    for dist in ("tensorrt-llm", "tensorrt_llm"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None
