"""Decode against the memory-bandwidth limit: one engine step of `--batch` sequences, timed on its device.

Each decode step must read every weight once and the K/V of every running sequence; at batch 64 that is
what bounds it. The bench builds a seeded-random Llama checkpoint (default: a ~1.1B TinyLlama shape),
loads it through PyTorchModelRunner (the path a user's checkpoint takes), runs decode steps of `--batch`
sequences at `--context` tokens of context, and prints the step time, the bytes a step has to read, the
bandwidth that implies, and its fraction of the device's copy bandwidth measured in the same run
(a device-to-device copy, bytes read plus written, as PERFORMANCE-TARGETS.md counts it).

    python bench/decode_bandwidth.py --device cuda --dtype bfloat16          # the GPU acceptance figure
    python bench/decode_bandwidth.py --device cpu --preset tiny --dtype float32   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.backends.pytorch.runner import PyTorchModelRunner  # noqa: E402
from server.engine.runner import BatchItem  # noqa: E402
from server.engine.sampling_params import SamplingParams  # noqa: E402

PRESETS = {
    # hidden, intermediate, layers, heads, kv heads, vocab
    "1b": (2048, 5632, 22, 32, 4, 32000),
    "tiny": (256, 688, 4, 4, 2, 1000),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--context", type=int, default=512, help="tokens of context per sequence")
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def build_checkpoint(directory: Path, preset: str, dtype: torch.dtype, device: str) -> Path:
    """A seeded-random Llama saved with save_pretrained (built on `device`: a 1B model in seconds)."""
    import transformers

    hidden, inter, layers, heads, kv_heads, vocab = PRESETS[preset]
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(str(directory))
    del model
    return directory


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """Bytes read plus written per second by a device-to-device copy (best of 10)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(12):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode_items(batch: int, context: int, block_size: int, vocab: int) -> list[BatchItem]:
    greedy = SamplingParams(max_tokens=1 << 20, temperature=0.0, ignore_eos=True)
    per_seq = (context + 1 + block_size - 1) // block_size
    items = []
    for i in range(batch):
        table = list(range(i * per_seq, (i + 1) * per_seq))
        token = [3 + i % (vocab - 3)]
        items.append(BatchItem(f"s{i}", token, context, table, True, greedy, context, []))
    return items


def step_bytes(runner: PyTorchModelRunner, batch: int, context: int) -> tuple[int, int]:
    """(weight bytes, K/V bytes) one decode step must read: every weight but the embedding table (only
    `batch` rows of it are read), and K and V of `context` tokens per sequence in every layer."""
    model = runner.model
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if model.lm_head is not model.embed:
        weights -= model.embed.numel() * model.embed.element_size()
    c = model.config
    kv = batch * context * c.num_layers * 2 * c.num_kv_heads * c.head_dim * runner.cache.pool.element_size()
    return weights, kv


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="hangar-decode-bw-") as tmp:
        path = build_checkpoint(Path(tmp), args.preset, dtype, args.device)
        per_seq = (args.context + 1 + args.block_size - 1) // args.block_size
        runner = PyTorchModelRunner.from_checkpoint(
            path, dtype=args.dtype, device=args.device, block_size=args.block_size,
            num_blocks=args.batch * per_seq + 1, max_model_len=args.context + 16,
        )  # fmt: skip
    print(f"{runner.describe()}; torch {torch.__version__}")
    peak = copy_bandwidth(device)
    items = decode_items(args.batch, args.context, args.block_size, runner.vocab_size)
    for _ in range(3):
        runner.execute(items)
    times = []
    for _ in range(args.steps):
        sync(device)
        start = time.perf_counter()
        runner.execute(items)
        sync(device)
        times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    weights, kv = step_bytes(runner, args.batch, args.context)
    achieved = (weights + kv) / step
    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "preset": args.preset, "dtype": args.dtype, "batch": args.batch, "context": args.context,
        "parameters_m": runner.model.config.num_parameters / 1e6, "step_ms_median": step * 1e3,
        "step_ms_min": min(times) * 1e3, "weight_bytes": weights, "kv_bytes": kv,
        "achieved_bytes_per_s": achieved, "copy_bytes_per_s": peak, "fraction_of_copy": achieved / peak,
        "decode_tokens_per_s": args.batch / step,
    }  # fmt: skip
    print(
        f"decode step, batch {args.batch} x {args.context} context: {step * 1e3:.2f} ms median "
        f"({min(times) * 1e3:.2f} min); reads {weights / 1e9:.2f} GB weights + {kv / 1e9:.2f} GB K/V "
        f"-> {achieved / 1e9:.0f} GB/s = {achieved / peak:.2f} of the {peak / 1e9:.0f} GB/s copy bandwidth"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
