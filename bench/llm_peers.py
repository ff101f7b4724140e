"""The transformers baselines of bench/engine_throughput.py: (a) static batches, (b) continuous batching."""

from __future__ import annotations

import time

import torch
from llm_workload import Result, Workload, wait_until


def run_hf_static(model: torch.nn.Module, work: Workload, mode: str, batch: int) -> Result:
    """(a): left-padded static batches, each running to its longest request."""
    outputs: list[list[int]] = []
    start = time.perf_counter()
    for first in range(0, len(work.prompts), batch):
        prompts = work.prompts[first : first + batch]
        lens = work.output_lens[first : first + batch]
        wait_until(start, max(work.arrivals[first : first + batch]))
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)  # type: ignore[union-attr]
        longest = max(lens)
        with torch.inference_mode():
            out = model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=longest,
                min_new_tokens=longest,
                pad_token_id=0,
                eos_token_id=2,
            )
        outputs += [out[row, width : width + n].tolist() for row, n in enumerate(lens)]
    return Result(
        "(a) transformers generate, static batches",
        mode,
        time.perf_counter() - start,
        work.useful_tokens,
        outputs,
    )


def run_hf_continuous(model: torch.nn.Module, work: Workload, mode: str) -> Result:
    """(b): transformers' continuous batching manager (the engine behind `generate_batch`)."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=False, max_new_tokens=max(work.output_lens), eos_token_id=-1, pad_token_id=0
    )
    start = time.perf_counter()
    results: dict[str, list[int]] = {}
    with model.continuous_batching_context_manager(
        generation_config=config, block=True, warmup=False
    ) as manager:  # type: ignore[operator]
        for i, (prompt, n) in enumerate(zip(work.prompts, work.output_lens, strict=True)):
            wait_until(start, work.arrivals[i])
            manager.add_request(prompt, request_id=f"r{i}", max_new_tokens=n, eos_token_id=-1)
        while len(results) < len(work.prompts):
            got = manager.get_result(timeout=1)
            if got is None:
                if not manager.is_running():
                    raise RuntimeError("transformers' continuous batching stopped producing results")
                continue
            if got.is_finished():
                results[got.request_id] = list(got.generated_tokens)
    outputs = [results[f"r{i}"] for i in range(len(work.prompts))]
    return Result(
        "(b) transformers continuous batching", mode, time.perf_counter() - start, work.useful_tokens, outputs
    )
