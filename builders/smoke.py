"""The check every pytorch-backend version passes before it is dropped: load it with Hangar's own engine
and tokenizer, as the server will, and greedily generate a few tokens."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from builders.errors import BuildFailed
from server.backends.llm.tokenizer import load_tokenizer
from server.backends.pytorch.checkpoint import Checkpoint
from server.backends.pytorch.runner import PyTorchModelRunner
from server.engine.config import EngineConfig
from server.engine.loop import EngineLoop
from server.engine.outputs import FinishReason, RequestOutput
from server.engine.sampling_params import SamplingParams
from server.errors import HangarError

SMOKE_PROMPT = "Hello, world"
SMOKE_TOKENS = 8
SMOKE_TIMEOUT_S = 300.0
_BLOCK_SIZE = 16
_MAX_LEN = 128


@dataclass(frozen=True)
class SmokeResult:
    prompt_ids: tuple[int, ...]
    output_ids: tuple[int, ...]
    text: str


def smoke_generate(
    version_dir: Path, prompt: str = SMOKE_PROMPT, max_tokens: int = SMOKE_TOKENS
) -> SmokeResult:
    """Greedy generation from `version_dir` on Hangar's engine (CUDA when present, else CPU).

    Raises:
        BuildFailed: the tokenizer or the checkpoint does not load, they disagree, or generation fails.
    """
    try:
        tokenizer = load_tokenizer(version_dir)
        checkpoint = Checkpoint.open(version_dir)
    except HangarError as e:
        raise BuildFailed(f"the written version does not load: {e.message}") from None
    if tokenizer.vocab_size > checkpoint.config.vocab_size:
        raise BuildFailed(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{checkpoint.config.vocab_size}: they do not belong together"
        )
    prompt_ids = tokenizer.encode(prompt)
    max_len = min(checkpoint.config.max_position_embeddings, _MAX_LEN)
    if len(prompt_ids) + max_tokens > max_len:
        raise BuildFailed(
            f"the smoke prompt needs {len(prompt_ids) + max_tokens} positions, the model has {max_len}"
        )
    try:
        runner = PyTorchModelRunner.from_checkpoint(
            version_dir,
            block_size=_BLOCK_SIZE,
            num_blocks=max_len // _BLOCK_SIZE,
            max_model_len=max_len,
            max_num_batched_tokens=max_len,
        )
    except HangarError as e:
        raise BuildFailed(f"the engine cannot load the written version: {e.message}") from None
    output_ids = _generate(runner, prompt_ids, max_tokens)
    return SmokeResult(tuple(prompt_ids), tuple(output_ids), tokenizer.decode(output_ids))


def _generate(runner: PyTorchModelRunner, prompt_ids: list[int], max_tokens: int) -> list[int]:
    loop = EngineLoop(
        runner, EngineConfig.from_runner(runner, max_num_seqs=1, max_num_batched_tokens=runner.max_model_len)
    )
    done = threading.Event()
    outputs: list[RequestOutput] = []

    def on_output(out: RequestOutput) -> None:
        outputs.append(out)
        if out.finished:
            done.set()

    loop.start()
    try:
        loop.submit(
            "smoke",
            prompt_ids,
            SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True),
            on_output,
        )
        if not done.wait(SMOKE_TIMEOUT_S):
            raise BuildFailed(f"the engine produced no result within {SMOKE_TIMEOUT_S:.0f}s")
    except HangarError as e:
        raise BuildFailed(f"the engine refused the smoke request: {e.message}") from None
    finally:
        loop.shutdown()
    last = outputs[-1]
    if last.finish_reason is not FinishReason.LENGTH:
        raise BuildFailed(
            f"smoke generation ended with {last.finish_reason}: {last.error or 'no error text'}"
        )
    return [t for out in outputs for t in out.new_token_ids]
