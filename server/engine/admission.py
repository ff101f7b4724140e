"""The checks a request passes before it may enter the engine (pure; safe from any thread)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from server.engine.config import EngineConfig
from server.engine.sampling_params import SamplingParams
from server.errors import InvalidInput, ResourceExhausted


def check_request(
    prompt_token_ids: Sequence[int], sampling: SamplingParams, config: EngineConfig, vocab_size: int
) -> list[int]:
    """Validate a request against the model and the pool; returns the prompt as a list of Python ints.

    Raises:
        InvalidInput: empty prompt, a non-integer or out-of-vocabulary id, bad sampling settings, or
            prompt + max_tokens beyond max_model_len.
        ResourceExhausted: the request could never fit in the whole KV pool, even running alone.
    """
    try:
        prompt = list(map(operator.index, prompt_token_ids))
    except TypeError as e:
        raise InvalidInput(f"prompt token ids must be integers: {e}") from None
    if not prompt:
        raise InvalidInput("the prompt is empty: at least one token id is required")
    if min(prompt) < 0 or max(prompt) >= vocab_size:
        pos, bad = next((i, t) for i, t in enumerate(prompt) if not 0 <= t < vocab_size)
        raise InvalidInput(
            f"prompt token id {bad} at position {pos} is outside the vocabulary [0, {vocab_size})"
        )
    sampling.validate(config.max_model_len)
    total = len(prompt) + sampling.max_tokens
    if total > config.max_model_len:
        raise InvalidInput(
            f"prompt of {len(prompt)} tokens + max_tokens {sampling.max_tokens} = {total} tokens exceeds "
            f"the model's max_model_len of {config.max_model_len}"
        )
    # Every token but the last sampled one needs a KV slot; a request that cannot hold them all even
    # alone in the pool would preempt itself forever.
    bs = config.block_size
    blocks = -(-(total - 1) // bs)
    if blocks > config.num_blocks:
        raise ResourceExhausted(
            f"prompt of {len(prompt)} tokens + max_tokens {sampling.max_tokens} needs {blocks} KV blocks of "
            f"{bs} tokens, but the whole pool has {config.num_blocks} blocks "
            f"({config.kv_capacity_tokens} tokens)"
        )
    return prompt
