"""The seeded LLM workload, model and result records shared by bench/engine_throughput.py's engines."""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Workload:
    prompts: list[list[int]]
    output_lens: list[int]
    arrivals: list[float]
    """Seconds after the start at which each request is submitted (all zero: all at once)."""

    @property
    def useful_tokens(self) -> int:
        return sum(self.output_lens)

    def head(self, n: int | None) -> Workload:
        """The first n requests (all of them when n is None)."""
        if n is None or n >= len(self.prompts):
            return self
        return Workload(self.prompts[:n], self.output_lens[:n], self.arrivals[:n])


@dataclass(frozen=True)
class Latencies:
    """Per-request time to first token and the gaps between successive deltas of one request, in ms."""

    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "ttft_p50_ms": percentile(self.ttft_ms, 50),
            "ttft_p99_ms": percentile(self.ttft_ms, 99),
            "itl_p50_ms": percentile(self.itl_ms, 50),
            "itl_p99_ms": percentile(self.itl_ms, 99),
        }


class StreamClock:
    """Timestamps one request's deltas: submission, then every delta that carries tokens."""

    def __init__(self) -> None:
        self.sent = time.perf_counter()
        self.deltas: list[float] = []

    def delta(self) -> None:
        self.deltas.append(time.perf_counter())


def latencies(clocks: list[StreamClock]) -> Latencies:
    ttft = [(c.deltas[0] - c.sent) * 1e3 for c in clocks if c.deltas]
    itl = [(b - a) * 1e3 for c in clocks for a, b in zip(c.deltas, c.deltas[1:], strict=False)]
    return Latencies(ttft, itl)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass(frozen=True)
class Result:
    engine: str
    mode: str
    seconds: float
    tokens: int
    outputs: list[list[int]] | None = None
    latency: Latencies | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def build_model(directory: Path, args: argparse.Namespace) -> Path:
    """A seeded-random Llama and a byte-level BPE tokenizer, saved as a Hugging Face checkpoint."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [
        "The quick brown fox jumps over the lazy dog while the engine streams tokens.",
        "café naïve résumé déjà vu, “quotes”, dashes and ümlauts.",
        "日本語のテキストと中文文本 and 한국어 mixed with English words.",
        "emoji 🙂🚀🎉 and symbols ∑ ∫ √ π in one line.",
    ] * 8
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=446,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = transformers.LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_prompt + args.max_output + 16,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(args.seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(str(directory))
    hf_tok.save_pretrained(str(directory))
    return directory


def make_workload(args: argparse.Namespace, vocab: int, poisson: bool) -> Workload:
    rng = np.random.default_rng(args.seed)
    n = args.requests
    prompt_lens = rng.integers(args.min_prompt, args.max_prompt + 1, n)
    output_lens = rng.integers(args.min_output, args.max_output + 1, n)
    prompts = [rng.integers(3, vocab, int(length)).tolist() for length in prompt_lens]
    gaps = rng.exponential(1.0 / args.arrival_rate, n) if poisson else np.zeros(n)
    arrivals = np.cumsum(gaps) - gaps[0]
    return Workload(prompts, [int(x) for x in output_lens], [float(a) for a in arrivals])


def wait_until(start: float, offset: float) -> None:
    delay = start + offset - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def machine() -> str:
    """CPU model, cores and load: on a shared machine the load says how far to trust the figures."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model
            )
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{model}, {os.cpu_count()} CPUs, load average {load}"
