"""Suite-wide pytest setup: markers that skip without a GPU or without tensorrt_llm."""

from __future__ import annotations

import importlib.util

import pytest


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_trt = pytest.mark.skip(reason="needs the tensorrt_llm package (pip install 'hangar[tensorrt-llm]')")
    has_gpu = _has_cuda()
    has_trt = importlib.util.find_spec("tensorrt_llm") is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
        if "trtllm" in item.keywords and not has_trt:
            item.add_marker(skip_trt)
