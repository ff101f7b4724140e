"""Checks a trtllm-build output directory against the limits it was asked for, before it is dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builders.engine_limits import EngineLimits
from server.backends.tensorrtllm.bindings import EngineInfo
from server.errors import LoadError

_SIZES = ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "max_beam_width")
_ENABLED = ("remove_input_padding", "use_paged_context_fmha", "paged_kv_cache")


def engine_problems(engine_dir: Path, limits: EngineLimits) -> list[str]:
    """What differs from the request (empty: the engine is what was asked for)."""
    path = engine_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        EngineInfo.read(engine_dir)  # what the tensorrtllm backend reads at load
    except (OSError, ValueError) as e:
        return [f"{path} is missing or not JSON: {e}"]
    except LoadError as e:
        return [e.message]
    build: dict[str, Any] = config.get("build_config", {})
    plugins: dict[str, Any] = build.get("plugin_config", {})
    problems = [
        f"build_config.{k} is {build.get(k)!r}, expected {getattr(limits, k)}"
        for k in _SIZES
        if build.get(k) != getattr(limits, k)
    ]
    problems += [
        f"plugin_config.{k} is {plugins.get(k)!r}, expected true"
        for k in _ENABLED
        if plugins.get(k) is not True
    ]
    block = plugins.get("tokens_per_block")
    if block != limits.tokens_per_block:
        problems.append(f"plugin_config.tokens_per_block is {block!r}, expected {limits.tokens_per_block}")
    if build.get("kv_cache_type", "PAGED") != "PAGED":
        problems.append(f"build_config.kv_cache_type is {build.get('kv_cache_type')!r}, expected PAGED")
    wanted = {f"rank{i}.engine" for i in range(limits.world_size)}
    present = {p.name for p in engine_dir.glob("rank*.engine")}
    problems += [f"{name} is missing" for name in sorted(wanted - present)]
    problems += [f"{name} is unexpected for {limits.world_size} rank(s)" for name in sorted(present - wanted)]
    return problems
