"""TensorRT-LLM 1.2's documented engine build: `convert_checkpoint.py` of the model family, then
`trtllm-build` with a paged KV cache and in-flight batching; finding both tools, and the exact argv."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from builders.engine_limits import EngineLimits
from builders.errors import BuildUnavailable

FAMILIES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen",
}
"""Hugging Face architecture -> the examples/models/core/<family> whose convert script handles it."""
EXAMPLES_ENV = "TRTLLM_EXAMPLES_DIR"
DEFAULT_EXAMPLES = (Path("/app/tensorrt_llm/examples"),)
"""Where NVIDIA's TensorRT-LLM containers keep the examples (the wheel does not ship them)."""
BUILD_TOOL = "trtllm-build"


@dataclass(frozen=True)
class Tools:
    convert_script: Path | None
    """None when not found; `tried` lists where it was looked for."""
    build_tool: str | None
    tried: tuple[Path, ...]

    def missing(self) -> list[str]:
        problems = []
        if self.convert_script is None:
            where = ", ".join(map(str, self.tried)) or "nowhere (no examples dir given)"
            problems.append(
                f"convert_checkpoint.py not found (looked in {where}); pass --convert-script PATH or "
                f"--trtllm-examples DIR (or set {EXAMPLES_ENV}) to a TensorRT-LLM v1.2 checkout's examples/"
            )
        if self.build_tool is None:
            problems.append(f"{BUILD_TOOL} is not on PATH (it comes with the tensorrt_llm package)")
        return problems

    def require(self) -> None:
        problems = self.missing()
        if problems:
            raise BuildUnavailable("; ".join(problems))


def find_tools(family: str, convert_script: Path | None, examples_dir: Path | None) -> Tools:
    if convert_script is not None:
        return Tools(
            convert_script if convert_script.is_file() else None, shutil.which(BUILD_TOOL), (convert_script,)
        )
    roots = [examples_dir] if examples_dir is not None else []
    if not roots and os.environ.get(EXAMPLES_ENV):
        roots = [Path(os.environ[EXAMPLES_ENV])]
    roots = roots or list(DEFAULT_EXAMPLES)
    tried = tuple(
        p for root in roots for p in (root / "models" / "core" / family / "convert_checkpoint.py",
                                      root / family / "convert_checkpoint.py")
    )  # fmt: skip
    found = next((p for p in tried if p.is_file()), None)
    return Tools(found, shutil.which(BUILD_TOOL), tried)


def convert_argv(script: Path | str, hf_dir: Path, out_dir: Path, limits: EngineLimits) -> list[str]:
    return [
        sys.executable, str(script),
        "--model_dir", str(hf_dir),
        "--output_dir", str(out_dir),
        "--dtype", limits.dtype,
        "--tp_size", str(limits.tp_size),
        "--pp_size", str(limits.pp_size),
    ]  # fmt: skip


def build_argv(tool: str, ckpt_dir: Path, engine_dir: Path, limits: EngineLimits) -> list[str]:
    """Paged KV cache, packed (padding-free) inputs for in-flight batching, and paged context FMHA so the
    server may enable KV cache reuse and chunked context."""
    return [
        tool,
        "--checkpoint_dir", str(ckpt_dir),
        "--output_dir", str(engine_dir),
        "--max_batch_size", str(limits.max_batch_size),
        "--max_input_len", str(limits.max_input_len),
        "--max_seq_len", str(limits.max_seq_len),
        "--max_num_tokens", str(limits.max_num_tokens),
        "--max_beam_width", str(limits.max_beam_width),
        "--kv_cache_type", "paged",
        "--tokens_per_block", str(limits.tokens_per_block),
        "--remove_input_padding", "enable",
        "--context_fmha", "enable",
        "--use_paged_context_fmha", "enable",
        "--gpt_attention_plugin", "auto",
        "--gemm_plugin", "auto",
        "--workers", str(limits.world_size),
    ]  # fmt: skip
