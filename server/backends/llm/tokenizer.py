"""The tokenizer an LLM model serves text with: a narrow wrapper over a local Hugging Face tokenizer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.errors import LoadError

log = logging.getLogger(__name__)

# transformers resolves its lazy attributes without a lock: two models loading on two threads can see
# "cannot import name 'AutoTokenizer'", so the first import is serialised.
_TRANSFORMERS_IMPORT = threading.Lock()

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


class TextTokenizer:
    """Encodes prompts, decodes generated ids (special tokens skipped, as TensorRT-LLM's postprocessing)."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._hf = hf_tokenizer
        self.vocab_size: int = len(hf_tokenizer)
        eos = getattr(hf_tokenizer, "eos_token_id", None)
        self.eos_token_id: int | None = int(eos) if isinstance(eos, int) else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._hf.encode(text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        # No clean-up of tokenization spaces: incremental decoding compares prefixes of decoded text.
        return str(
            self._hf.decode(
                list(ids), skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
            )
        )


def has_tokenizer_files(directory: Path) -> bool:
    return any((directory / name).is_file() for name in _TOKENIZER_FILES)


def load_tokenizer(directory: Path) -> TextTokenizer:
    """Load the tokenizer saved in `directory` (local files only; nothing is downloaded).

    Raises:
        LoadError: no tokenizer files there, or they do not load.
    """
    if not has_tokenizer_files(directory):
        raise LoadError(f"no tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {directory}")
    try:
        with _TRANSFORMERS_IMPORT:
            from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as e:
        raise LoadError(f"cannot load the tokenizer in {directory}: {e}") from e
    log.debug("loaded tokenizer from %s (%d tokens)", directory, len(hf))
    return TextTokenizer(hf)
