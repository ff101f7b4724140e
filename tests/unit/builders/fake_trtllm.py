"""A stand-in for TensorRT-LLM 1.2's engine build tools that follows their documented command lines:
`convert_checkpoint.py` (examples/models/core/<family>/) writes a TensorRT-LLM checkpoint (config.json +
rank<i>.safetensors) and `trtllm-build` writes an engine dir (config.json with pretrained_config and
build_config + rank<i>.engine). Flags they do not know are argparse errors, as in the real tools.

    fake = install_fake_trtllm(tmp_path)      # bin/, examples/, site/tensorrt_llm
    monkeypatch.setenv("PATH", fake.path_env()); monkeypatch.syspath_prepend(str(fake.site))

FAKE_TRTLLM_FAIL=1 makes trtllm-build fail like an out-of-memory build; FAKE_TRTLLM_MAX_BATCH_SIZE=N makes it
write another max_batch_size than asked (an engine the builder must refuse).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

_CONVERT = """\
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--model_dir", required=True)
p.add_argument("--output_dir", default="tllm_checkpoint")
p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
p.add_argument("--tp_size", type=int, default=1)
p.add_argument("--pp_size", type=int, default=1)
p.add_argument("--workers", type=int, default=1)
a = p.parse_args()
hf = json.load(open(os.path.join(a.model_dir, "config.json")))
os.makedirs(a.output_dir, exist_ok=True)
world = a.tp_size * a.pp_size
keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
config = {k: hf[k] for k in keys}
config.update(architecture=hf["architectures"][0], dtype="float16" if a.dtype == "auto" else a.dtype,
              mapping={"world_size": world, "tp_size": a.tp_size, "pp_size": a.pp_size})
json.dump(config, open(os.path.join(a.output_dir, "config.json"), "w"), indent=2)
for rank in range(world):
    open(os.path.join(a.output_dir, f"rank{rank}.safetensors"), "wb").write(b"fake weights")
print("Total time of converting checkpoints: 00:00:00")
"""

_BUILD = """\
import argparse, json, os, sys
p = argparse.ArgumentParser()
p.add_argument("--checkpoint_dir", required=True)
p.add_argument("--output_dir", default="engine_outputs")
for flag, default in (("--max_batch_size", 2048), ("--max_input_len", 1024), ("--max_seq_len", None),
                      ("--max_num_tokens", 8192), ("--max_beam_width", 1), ("--tokens_per_block", 32),
                      ("--workers", 1)):
    p.add_argument(flag, type=int, default=default)
p.add_argument("--kv_cache_type", choices=["continuous", "paged", "disabled"], default="paged")
for flag in ("--remove_input_padding", "--context_fmha", "--use_paged_context_fmha"):
    p.add_argument(flag, choices=["enable", "disable"], default="enable")
for flag in ("--gpt_attention_plugin", "--gemm_plugin"):
    p.add_argument(flag, choices=["auto", "float16", "bfloat16", "float32", "disable"])
a = p.parse_args()
if os.environ.get("FAKE_TRTLLM_FAIL"):
    print("[TRT-LLM] [E] CUDA out of memory while building the engine")
    sys.exit(1)
ckpt = json.load(open(os.path.join(a.checkpoint_dir, "config.json")))
os.makedirs(a.output_dir, exist_ok=True)
build = {"max_batch_size": int(os.environ.get("FAKE_TRTLLM_MAX_BATCH_SIZE", a.max_batch_size)),
         "max_input_len": a.max_input_len, "max_seq_len": a.max_seq_len or ckpt["max_position_embeddings"],
         "max_num_tokens": a.max_num_tokens, "max_beam_width": a.max_beam_width,
         "kv_cache_type": a.kv_cache_type.upper(),
         "plugin_config": {"paged_kv_cache": a.kv_cache_type == "paged",
                           "tokens_per_block": a.tokens_per_block,
                           "remove_input_padding": a.remove_input_padding == "enable",
                           "context_fmha": a.context_fmha == "enable",
                           "use_paged_context_fmha": a.use_paged_context_fmha == "enable",
                           "gpt_attention_plugin": a.gpt_attention_plugin, "gemm_plugin": a.gemm_plugin}}
config = {"version": "1.2.0", "pretrained_config": ckpt, "build_config": build}
json.dump(config, open(os.path.join(a.output_dir, "config.json"), "w"), indent=2)
for rank in range(ckpt["mapping"]["world_size"]):
    open(os.path.join(a.output_dir, f"rank{rank}.engine"), "wb").write(b"fake engine")
print(f"[TRT-LLM] [I] Total time of building all engines: 00:00:00")
"""


@dataclass(frozen=True)
class FakeTrtllm:
    bin: Path
    examples: Path
    site: Path
    """Holds an empty `tensorrt_llm` package, so importlib.util.find_spec finds one."""

    def path_env(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"


def install_fake_trtllm(root: Path) -> FakeTrtllm:
    bin_dir, examples, site = root / "bin", root / "examples", root / "site"
    bin_dir.mkdir(parents=True)
    tool = bin_dir / "trtllm-build"
    tool.write_text(f"#!{sys.executable}\n{_BUILD}")
    tool.chmod(0o755)
    for family in ("llama", "qwen"):
        script = examples / "models" / "core" / family / "convert_checkpoint.py"
        script.parent.mkdir(parents=True)
        script.write_text(_CONVERT)
    (site / "tensorrt_llm").mkdir(parents=True)
    (site / "tensorrt_llm" / "__init__.py").write_text(
        '"""Test double: found by find_spec, never imported."""\n'
    )
    return FakeTrtllm(bin_dir, examples, site)
