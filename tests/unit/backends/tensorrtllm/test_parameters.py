"""tensorrtllm parameters: TensorRT-LLM's names and defaults, and clear errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.backends.tensorrtllm.parameters import TensorRTLLMParameters
from server.errors import ConfigError
from server.repository.model_config import ModelConfig


def _params(**values: str) -> TensorRTLLMParameters:
    config = ModelConfig.from_dict(
        {
            "name": "trt",
            "backend": "tensorrtllm",
            "parameters": {k: {"string_value": v} for k, v in values.items()},
        }
    )
    return TensorRTLLMParameters.from_config(config)


def test_defaults_follow_the_triton_backend() -> None:
    p = _params()
    assert p.batching_type == "inflight_fused_batching"
    assert p.batch_scheduler_policy == "guaranteed_no_evict"
    assert (p.max_beam_width, p.enable_kv_cache_reuse, p.enable_chunked_context) == (1, False, False)
    assert (p.kv_cache_free_gpu_mem_fraction, p.max_tokens_in_paged_kv_cache) == (None, None)
    assert (p.exclude_input_in_output, p.normalize_log_probs, p.stats_check_period_ms) == (False, True, 100)
    assert p.engine_dir(Path("/repo/m/1")) == Path("/repo/m/1")


def test_values_as_the_llama_example_writes_them() -> None:
    p = _params(
        gpt_model_path="/engines/llama",
        gpt_model_type="inflight_fused_batching",
        max_tokens_in_paged_kv_cache="2560",
        kv_cache_free_gpu_mem_fraction="0.5",
        exclude_input_in_output="True",
        enable_kv_cache_reuse="true",
        batch_scheduler_policy="max_utilization",
        max_attention_window_size="4096,4096",
        gpu_device_ids="0,1",
        decoding_mode="top_k_top_p",
    )
    assert p.engine_dir(Path("/repo/m/1")) == Path("/engines/llama")
    assert (p.max_tokens_in_paged_kv_cache, p.kv_cache_free_gpu_mem_fraction) == (2560, 0.5)
    assert p.exclude_input_in_output and p.enable_kv_cache_reuse
    assert p.max_attention_window_size == (4096, 4096) and p.gpu_device_ids == (0, 1)


def test_batching_strategy_is_accepted_as_a_name_and_v1_means_static() -> None:
    assert _params(batching_strategy="V1").batching_type == "v1"
    assert _params(gpt_model_type="inflight_batching").batching_type == "inflight_batching"


def test_empty_values_mean_default() -> None:
    assert _params(max_tokens_in_paged_kv_cache="", kv_cache_free_gpu_mem_fraction=" ") == _params()


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"max_tokens_in_kv_cache": "10"}, "unknown tensorrtllm parameter(s) max_tokens_in_kv_cache; valid"),
        ({"gpt_model_path": "${engine_dir}"}, "template placeholders: gpt_model_path='${engine_dir}'"),
        ({"gpt_model_type": "dynamic"}, "gpt_model_type 'dynamic' is invalid"),
        ({"gpt_model_type": "V1", "batching_strategy": "inflight_batching"}, "disagree"),
        ({"batch_scheduler_policy": "fifo"}, "batch_scheduler_policy 'fifo' is invalid"),
        ({"kv_cache_free_gpu_mem_fraction": "1.2"}, "kv_cache_free_gpu_mem_fraction must be in (0, 1]"),
        ({"max_beam_width": "zero"}, "max_beam_width: expected an integer, got 'zero'"),
        ({"enable_kv_cache_reuse": "sometimes"}, "expected true or false, got 'sometimes'"),
        ({"decoding_mode": "medusa"}, "decoding_mode 'medusa' is not supported"),
        ({"medusa_choices": "{0}"}, "speculative decoding (medusa_choices)"),
        ({"encoder_model_path": "/enc"}, "encoder-decoder"),
    ],
)
def test_bad_parameters_are_config_errors(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        _params(**values)
    assert fragment in str(e.value)


def test_placeholders_are_all_listed() -> None:
    with pytest.raises(ConfigError) as e:
        _params(gpt_model_path="${engine_dir}", decoupled_mode="${decoupled_mode}")
    assert "unknown" in str(e.value)  # decoupled_mode is a template var, not a parameter
    with pytest.raises(ConfigError) as e:
        _params(gpt_model_path="${engine_dir}", tokenizer_dir="${tokenizer_dir}")
    assert "gpt_model_path" in str(e.value) and "tokenizer_dir" in str(e.value)
