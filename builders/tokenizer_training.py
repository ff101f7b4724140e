"""A byte-level BPE tokenizer (GPT-2 / Qwen style) trained in milliseconds on text that ships with Hangar,
saved so `transformers.AutoTokenizer.from_pretrained(dir)` loads it offline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS_RESOURCE = "data/corpus.txt"
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (UNK, BOS, EOS)
"""Ids 0, 1, 2 in that order."""


def corpus_lines() -> list[str]:
    text = resources.files("builders").joinpath(CORPUS_RESOURCE).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def corpus_sha256() -> str:
    data = resources.files("builders").joinpath(CORPUS_RESOURCE).read_bytes()
    return hashlib.sha256(data).hexdigest()


def train_byte_level_bpe(lines: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Every byte is a token, so any text round-trips; encoded prompts start with <s>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK, bos_token=BOS, eos_token=EOS)


def write_tokenizer(directory: Path, vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """Train on the shipped corpus and save tokenizer.json and tokenizer_config.json into `directory`."""
    tokenizer = train_byte_level_bpe(corpus_lines(), vocab_size)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(directory))
    # transformers 5 names its own class; this name loads in transformers 4 too (TensorRT-LLM pins 4.x).
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return tokenizer
