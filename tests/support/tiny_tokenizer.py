"""Tiny tokenizers trained in milliseconds: byte-level BPE (GPT-2 / Qwen style) and a Llama-style
sentencepiece BPE with byte fallback. Small vocabularies split CJK and emoji across several tokens."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from server.backends.llm.tokenizer import TextTokenizer, load_tokenizer

CORPUS = [
    "Hello world, this is a tiny corpus for a tiny tokenizer.",
    "The quick brown fox jumps over the lazy dog.",
    "Streaming text must keep its spaces and never split a character.",
    "café naïve résumé — “quotes” and dashes",
    "日本語のテキストと絵文字 🙂🚀 mixed with English words.",
    "stop words, bad words, and the end of the sequence",
] * 4
SPECIALS = ["<unk>", "<s>", "</s>"]


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def byte_level_bpe(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """GPT-2-style: every byte is a token, so any text round-trips; prompts get a leading <s>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return _wrap(tok)


def sentencepiece_bpe(vocab_size: int = 200) -> PreTrainedTokenizerFast:
    """Llama-style: '▁' marks spaces, unknown characters fall back to <0xNN> byte tokens, and the
    decoder strips the leading space of the whole text (the source of dropped spaces in naive streams)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    ascii_corpus = [line for line in CORPUS if line.isascii()]
    tok.train_from_iterator(ascii_corpus, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    spec["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return _wrap(tok)


def save_and_load(hf: PreTrainedTokenizerFast, directory: Path) -> TextTokenizer:
    """Save like a checkpoint does and load it back the way the backends do (AutoTokenizer, local)."""
    hf.save_pretrained(str(directory))
    return load_tokenizer(directory)
