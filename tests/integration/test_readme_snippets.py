"""README.md's promises on a fresh copy of model_repo/: `make demo` builds the missing models with the real
CLI, the `make serve` command serves them, and every Python snippet of README.md runs against that server
and gets the values the README says it gets."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.support.server import PROJECT_ROOT, ServerProcess, server_process

README = PROJECT_ROOT / "README.md"
SOURCE_REPOSITORY = PROJECT_ROOT / "model_repo"
README_ADDRESS = "localhost:8001"
MODELS = {"add_sub", "add_sub_onnx", "demo_llm", "streaming"}
BUILD_TIMEOUT_S = 300.0
SNIPPET_TIMEOUT_S = 120.0
# `make -o` treats the install stamp as up to date: the test runs in the already installed environment.
MAKE = ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "-o", ".venv/.installed", "VENV=.venv"]
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_MODEL_NAME = re.compile(r"infer\(\s*\"([^\"]+)\"")
_METRICS_PORT = re.compile(r"metrics on http://\S+?:(\d+)/metrics")


def python_snippets() -> dict[str, str]:
    """README.md's ```python blocks, keyed by the model each one calls."""
    snippets: dict[str, str] = {}
    for block in _PYTHON_BLOCK.findall(README.read_text(encoding="utf-8")):
        match = _MODEL_NAME.search(block)
        assert match, f"a README snippet calls no model:\n{block}"
        assert match.group(1) not in snippets, f"two README snippets call {match.group(1)!r}"
        snippets[match.group(1)] = block
    return snippets


SNIPPETS = python_snippets()


@dataclass
class SnippetRun:
    """What one snippet printed (each call's args and kwargs) and its globals when it finished."""

    printed: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=dict)

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.printed.append((args, kwargs))


def run_snippet(source: str, url: str, timeout_s: float = SNIPPET_TIMEOUT_S) -> SnippetRun:
    """Executes `source` (pointed at `url`) in a fresh namespace on a thread; raises what it raises."""
    assert README_ADDRESS in source, f"the snippet does not connect to {README_ADDRESS}:\n{source}"
    run = SnippetRun()
    run.namespace.update(__name__="__readme__", print=run.print)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            exec(compile(source.replace(README_ADDRESS, url), "<README.md>", "exec"), run.namespace)
        except BaseException as e:  # re-raised on the test's thread
            errors.append(e)

    thread = threading.Thread(target=target, name="readme-snippet", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AssertionError(f"README snippet still running after {timeout_s:.0f}s:\n{source}")
    if errors:
        raise errors[0]
    return run


def copy_sources(destination: Path) -> None:
    """model_repo/ as committed: config.pbtxt and model.py files, none of the artifacts `make demo` builds."""
    for config in SOURCE_REPOSITORY.glob("*/config.pbtxt"):
        model = config.parent
        (destination / model.name).mkdir(parents=True)
        shutil.copy2(config, destination / model.name / config.name)
        for source in model.glob("[0-9]*/*.py"):
            (destination / model.name / source.parent.name).mkdir(exist_ok=True)
            shutil.copy2(source, destination / model.name / source.parent.name / source.name)


def make(*args: str, repository: Path) -> subprocess.CompletedProcess[str]:
    overrides = [f"PY={sys.executable}", f"REPO={repository}", "GRPC_PORT=0", "METRICS_PORT=0"]
    return subprocess.run(
        [*MAKE, *args, *overrides], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )


def serve_args(repository: Path) -> list[str]:
    """The flags `make serve` passes to `python -m server serve` (ports 0: free ones)."""
    dry_run = make("-n", "serve", repository=repository)
    assert dry_run.returncode == 0, dry_run.stderr
    command = shlex.split(dry_run.stdout.strip().splitlines()[-1])
    assert command[:4] == [sys.executable, "-m", "server", "serve"], command
    return command[4:]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("needs make: README.md's commands are Makefile targets")
    repo = tmp_path_factory.mktemp("model_repo")
    copy_sources(repo)
    assert {p.name for p in repo.iterdir()} == MODELS
    assert not (repo / "demo_llm" / "1").exists() and not (repo / "add_sub_onnx" / "1").exists()
    built = make("demo", repository=repo)
    assert built.returncode == 0, f"make demo failed:\n{built.stdout}\n{built.stderr}"
    return repo


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with server_process([*serve_args(repository), "--allow-metrics", "true"]) as proc:
        yield proc
        assert proc.stop() == 0, proc.output


@pytest.fixture(scope="module")
def runs(server: ServerProcess) -> Iterator[dict[str, SnippetRun]]:
    """Each README snippet run once against the server, on first use."""

    class Runs(dict[str, SnippetRun]):
        def __missing__(self, model: str) -> SnippetRun:
            self[model] = run_snippet(SNIPPETS[model], server.url)
            return self[model]

    yield Runs()


def test_make_demo_builds_the_missing_models_and_a_second_run_builds_nothing(repository: Path) -> None:
    assert (repository / "demo_llm" / "1" / "model.safetensors").is_file()
    assert (repository / "add_sub_onnx" / "1" / "model.onnx").is_file()
    again = make("demo", repository=repository)
    assert again.returncode == 0 and again.stdout.strip() == "", again.stdout + again.stderr


def test_make_serve_serves_every_model_of_the_repository(server: ServerProcess) -> None:
    client = grpcclient.InferenceServerClient(server.url)
    index = {m.name: m.state for m in client.get_model_repository_index(as_json=False).models}
    assert index == {name: "READY" for name in MODELS}, index


@pytest.mark.parametrize("model", sorted(SNIPPETS))
def test_readme_snippet_runs(runs: dict[str, SnippetRun], model: str) -> None:
    assert runs[model].printed, f"the {model} snippet printed nothing"


def test_readme_has_a_snippet_for_each_example_model() -> None:
    assert set(SNIPPETS) == {"add_sub", "streaming", "demo_llm"}


def _assert_add_sub(run: SnippetRun) -> None:
    [(outputs, _)] = run.printed
    a, b = run.namespace["a"], run.namespace["b"]
    assert len(outputs) == 2
    np.testing.assert_array_equal(outputs[0], a + b)
    np.testing.assert_array_equal(outputs[1], a - b)
    assert outputs[0].dtype == np.float32 and outputs[0].shape == (1, 16)


def test_add_sub_snippet_prints_the_sum_and_the_difference(runs: dict[str, SnippetRun]) -> None:
    _assert_add_sub(runs["add_sub"])


def test_the_same_request_works_against_add_sub_onnx(server: ServerProcess) -> None:
    source = SNIPPETS["add_sub"]
    assert source.count('"add_sub"') == 1
    _assert_add_sub(run_snippet(source.replace('"add_sub"', '"add_sub_onnx"'), server.url))


def test_streaming_snippet_prints_0_to_n_minus_1_then_gets_the_final_response(
    runs: dict[str, SnippetRun],
) -> None:
    run = runs["streaming"]
    assert [args[0].tolist() for args, _ in run.printed] == [[0], [1], [2], [3]]
    assert run.namespace["final"] is True


def _streamed_text(run: SnippetRun) -> str:
    assert all(kwargs.get("end") == "" and len(args) == 1 for args, kwargs in run.printed), run.printed
    return "".join(args[0] for args, _ in run.printed)


def test_llm_snippet_streams_deltas_that_concatenate_to_the_non_streamed_text(
    runs: dict[str, SnippetRun], server: ServerProcess
) -> None:
    streamed = runs["demo_llm"]
    assert len(streamed.printed) > 1, "the demo LLM's answer came in a single response"
    assert streamed.namespace["text"] is not None, "the final response carried no text_output"
    source = SNIPPETS["demo_llm"]
    stream_flag, prompt = "np.array([[True]])", "Once upon a time"
    assert source.count(stream_flag) == 1 and f'"{prompt}"' in source
    whole = run_snippet(source.replace(stream_flag, "np.array([[False]])"), server.url)
    assert len(whole.printed) == 1
    # As on Triton's TensorRT-LLM ensemble: a non-streamed text_output starts with the prompt, deltas do not.
    assert _streamed_text(whole) == prompt + _streamed_text(streamed)
    assert _streamed_text(streamed) != ""


def test_metrics_count_the_snippets_requests(runs: dict[str, SnippetRun], server: ServerProcess) -> None:
    runs["add_sub"]
    match = _METRICS_PORT.search(server.output)
    assert match, server.output
    with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/metrics", timeout=30) as response:
        text = response.read().decode()
    success = re.search(r'^nv_inference_request_success\{model="add_sub",version="1"\} (\S+)$', text, re.M)
    assert success and float(success.group(1)) >= 1, text


def test_every_document_the_readme_lists_under_docs_exists() -> None:
    listed = re.findall(r"`(docs/[^`]+)`", README.read_text(encoding="utf-8"))
    assert listed, "README.md lists no docs/"
    assert [path for path in listed if not (PROJECT_ROOT / path).is_file()] == []
