"""`hangar build tensorrtllm`: planning, input checks and the drop, against a stand-in for TensorRT-LLM's
documented build tools (fake_trtllm.py); the real tools only under the trtllm marker."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from builders.engine_dir_check import engine_problems
from builders.engine_limits import EngineLimits
from builders.manifest import read_manifest, verify_manifest
from server.app.main import main
from server.backends.tensorrtllm.parameters import TensorRTLLMParameters
from server.protocol.config_text import parse_config_text
from server.repository.model_config import ModelConfig
from tests.unit.builders.checkpoints import copy_checkpoint
from tests.unit.builders.fake_trtllm import FakeTrtllm, install_fake_trtllm

HAS_TRTLLM = importlib.util.find_spec("tensorrt_llm") is not None


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTrtllm:
    tools = install_fake_trtllm(tmp_path / "trtllm")
    monkeypatch.setenv("PATH", tools.path_env())
    monkeypatch.setenv("TRTLLM_EXAMPLES_DIR", str(tools.examples))
    monkeypatch.syspath_prepend(str(tools.site))
    return tools


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


def _build(checkpoint: Path, repo: Path, *extra: str) -> int:
    args = [
        "build",
        "tensorrtllm",
        "--checkpoint",
        str(checkpoint),
        "--repository",
        str(repo),
        "--model",
        "trt",
    ]
    return main([*args, "--max-input-len", "256", "--max-seq-len", "512", "--max-num-tokens", "1024", *extra])


@pytest.mark.skipif(HAS_TRTLLM, reason="tensorrt_llm is installed here")
def test_without_tensorrt_llm_it_says_so_and_exits_2(
    llama_checkpoint: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(llama_checkpoint, repo) == 2
    err = capsys.readouterr().err
    assert "tensorrt_llm is not installed" in err and "--dry-run` shows the plan" in err
    assert list(repo.iterdir()) == []


def test_dry_run_prints_the_exact_commands_even_without_tensorrt_llm(
    llama_checkpoint: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(llama_checkpoint, repo, "--dry-run", "--tp-size", "2") == 0
    out = capsys.readouterr().out
    convert = next(line for line in out.splitlines() if "convert_checkpoint.py" in line and "$" in line)
    assert "models/core/llama/convert_checkpoint.py" in convert
    assert f"--model_dir {llama_checkpoint}" in convert and "--tp_size 2 --pp_size 1" in convert
    build = next(line for line in out.splitlines() if "trtllm-build" in line and "$" in line)
    for flags in (
        "--max_batch_size 64 --max_input_len 256 --max_seq_len 512 --max_num_tokens 1024",
        "--kv_cache_type paged --tokens_per_block 32",
        "--remove_input_padding enable",
        "--use_paged_context_fmha enable",
        "--workers 2",
    ):
        assert flags in build
    assert '+parameters { key: "gpt_model_path" value: { string_value: "engine" } }' in out
    assert "dry run: nothing was written" in out
    assert list(repo.iterdir()) == []


def test_the_documented_build_flow_drops_an_engine_version(
    fake: FakeTrtllm, llama_checkpoint: Path, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(llama_checkpoint, repo, "--batch-scheduler-policy", "max_utilization") == 0
    version = repo / "trt" / "1"
    assert sorted(p.name for p in (repo / "trt").iterdir()) == [
        "1",
        "config.pbtxt",
    ]  # scratch checkpoint gone
    assert sorted(p.name for p in (version / "engine").iterdir()) == ["config.json", "rank0.engine"]
    assert (version / "tokenizer" / "tokenizer.json").is_file()
    limits = EngineLimits(max_input_len=256, max_seq_len=512, max_num_tokens=1024)
    assert engine_problems(version / "engine", limits) == []
    config = ModelConfig.from_dict(parse_config_text((repo / "trt" / "config.pbtxt").read_text(), "t"))
    assert config.backend == "tensorrtllm" and config.decoupled
    params = TensorRTLLMParameters.from_config(config)  # the server's own parsing of the parameters
    assert params.engine_dir(version) == version / "engine"
    assert (params.tokenizer_dir, params.batching_type, params.batch_scheduler_policy) == (
        "tokenizer", "inflight_fused_batching", "max_utilization"
    )  # fmt: skip
    assert (params.enable_kv_cache_reuse, params.kv_cache_free_gpu_mem_fraction) == (True, 0.9)
    manifest = read_manifest(version)
    assert manifest["parameters"]["max_seq_len"] == 512 and manifest["parameters"]["family"] == "llama"
    assert verify_manifest(version) == []
    assert "trtllm-build --checkpoint_dir" in capsys.readouterr().out


def test_tensor_parallel_engines_have_one_file_per_rank(
    fake: FakeTrtllm, llama_checkpoint: Path, repo: Path
) -> None:
    assert _build(llama_checkpoint, repo, "--tp-size", "2", "--dtype", "bfloat16") == 0
    engine = repo / "trt" / "1" / "engine"
    assert sorted(p.name for p in engine.glob("rank*.engine")) == ["rank0.engine", "rank1.engine"]
    assert json.loads((engine / "config.json").read_text())["pretrained_config"]["dtype"] == "bfloat16"


def test_a_rebuild_keeps_tuned_settings_and_the_users_parameters(
    fake: FakeTrtllm, llama_checkpoint: Path, repo: Path
) -> None:
    assert _build(llama_checkpoint, repo) == 0
    config = repo / "trt" / "config.pbtxt"
    tuned = config.read_text().replace('"0.9"', '"0.6"')
    config.write_text(
        tuned + 'parameters { key: "exclude_input_in_output" value: { string_value: "true" } }\n'
    )
    assert _build(llama_checkpoint, repo, "--enable-kv-cache-reuse", "false") == 0
    params = TensorRTLLMParameters.from_config(
        ModelConfig.from_dict(parse_config_text(config.read_text(), "t"))
    )
    assert params.kv_cache_free_gpu_mem_fraction == 0.6 and params.exclude_input_in_output
    assert params.enable_kv_cache_reuse is False  # given on the command line: written
    assert sorted(p.name for p in (repo / "trt").iterdir()) == ["1", "2", "config.pbtxt"]


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"FAKE_TRTLLM_FAIL": "1"},
            "trtllm-build failed with exit status 1; its last output:\n    [TRT-LLM] [E] CUDA out of memory",
        ),
        ({"FAKE_TRTLLM_MAX_BATCH_SIZE": "7"}, "build_config.max_batch_size is 7, expected 64"),
    ],
)
def test_a_failed_or_wrong_engine_build_drops_nothing(
    fake: FakeTrtllm,
    llama_checkpoint: Path,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    error: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _build(llama_checkpoint, repo) == 1
    assert error in capsys.readouterr().err
    assert sorted(p.name for p in (repo / "trt").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--max-input-len", "512"], "--max-input-len (512) must be less than --max-seq-len (512)"),
        (["--max-num-tokens", "128"], "--max-num-tokens (128) is below --max-input-len (256)"),
        (["--tokens-per-block", "48"], "--tokens-per-block must be a power of 2, got 48"),
        (["--max-batch-size", "0"], "--max-batch-size must be a positive integer, got 0"),
        (["--tp-size", "3"], "--tp-size 3 does not divide num_attention_heads (4)"),
        (
            ["--max-seq-len", "4096"],
            "--max-seq-len (4096) exceeds the model's max_position_embeddings (1024)",
        ),
        (
            ["--kv-cache-free-gpu-mem-fraction", "1.5"],
            "--kv-cache-free-gpu-mem-fraction must be in (0, 1], got 1.5",
        ),
        (["--version", "0"], "--version must be a positive integer, got 0"),
    ],
)
def test_contradictory_limits_are_refused_before_any_work(
    fake: FakeTrtllm,
    llama_checkpoint: Path,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    error: str,
) -> None:
    assert _build(llama_checkpoint, repo, *args) == 2
    assert error in capsys.readouterr().err
    assert list(repo.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"architectures": ["Qwen3ForCausalLM"]}, "architecture Qwen3ForCausalLM of"),
        ("config.json", "config.json is missing"),
        ("tokenizer.json", "has no tokenizer"),
        ("model.safetensors", "has no weights: expected model.safetensors"),
    ],
)
def test_an_unusable_checkpoint_is_named(
    fake: FakeTrtllm,
    llama_checkpoint: Path,
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, object] | str,
    error: str,
) -> None:
    if isinstance(change, dict):
        checkpoint = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt", **change)
    else:
        checkpoint = copy_checkpoint(llama_checkpoint, tmp_path / "ckpt")
        (checkpoint / change).unlink()
    assert _build(checkpoint, repo) == 2
    err = capsys.readouterr().err
    assert error in err and str(checkpoint) in err
    assert list(repo.iterdir()) == []


@pytest.mark.trtllm
@pytest.mark.gpu
def test_real_tensorrt_llm_builds_the_demo_checkpoint(
    llama_checkpoint: Path, repo: Path, tmp_path: Path
) -> None:
    """With TensorRT-LLM 1.2 and its examples (TRTLLM_EXAMPLES_DIR) on a GPU machine."""
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(llama_checkpoint, checkpoint)
    assert _build(checkpoint, repo, "--dtype", "float16") == 0
    limits = EngineLimits(max_input_len=256, max_seq_len=512, max_num_tokens=1024, dtype="float16")
    assert engine_problems(repo / "trt" / "1" / "engine", limits) == []
