"""An LLM served end to end over gRPC with tritonclient: a tiny checkpoint on Hangar's PyTorch engine.

The model's config.pbtxt holds only name, backend and the decoupled policy; everything else is auto-completed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient

from server.engine.stats import SchedulerStats
from tests.support.server import RunningServer, running_server, wait_until
from tests.support.tiny_llm import hf_greedy, tiny_llm
from tests.support.tiny_tokenizer import byte_level_bpe
from tests.support.trtllm_executor import fake_tensorrt_llm, next_token, write_engine_dir

MODEL = "tiny_llm"
SMALL_POOL = "tiny_llm_small_pool"
MINIMAL_CONFIG = f'name: "{MODEL}"\nbackend: "pytorch"\nmodel_transaction_policy {{ decoupled: true }}\n'
SMALL_POOL_CONFIG = (
    f'name: "{SMALL_POOL}"\nbackend: "pytorch"\nmodel_transaction_policy {{ decoupled: true }}\n'
    'parameters { key: "num_blocks" value: { string_value: "4" } }\n'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    checkpoint = tiny_llm(tmp_path_factory, "llama")
    repo = tmp_path_factory.mktemp("llm_repo")
    for name, config in ((MODEL, MINIMAL_CONFIG), (SMALL_POOL, SMALL_POOL_CONFIG)):
        shutil.copytree(checkpoint, repo / name / "1")
        (repo / name / "config.pbtxt").write_text(config)
    with pytest.MonkeyPatch.context() as mp:
        # Without num_blocks a CPU pool takes up to 4 GiB; a test machine shared by many suites gets 16 MiB.
        mp.setattr("server.backends.pytorch.kv_sizing.DEFAULT_CPU_CAP_BYTES", 16 << 20)
        with running_server(repo) as srv:
            yield srv


def _engine_stats(srv: RunningServer, model: str = MODEL) -> SchedulerStats:
    with srv.manager.acquire(model) as handle:
        stats = handle.backend.engine_stats()
    assert isinstance(stats, SchedulerStats)
    return stats


def _tensor(name: str, value: Any) -> grpcclient.InferInput:
    array = np.asarray(value)
    if array.dtype.kind in "US":
        array = np.array([[v.encode() for v in np.atleast_1d(value)]], dtype=object)
        dtype = "BYTES"
    elif array.dtype == np.bool_:
        array, dtype = array.reshape(1, -1), "BOOL"
    else:
        array, dtype = array.astype(np.int32).reshape(1, -1), "INT32"
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def _request(
    request_id: str, model: str = MODEL, outputs: list[str] | None = None, **inputs: Any
) -> dict[str, Any]:
    return {
        "model_name": model,
        "request_id": request_id,
        "inputs": [_tensor(k, v) for k, v in inputs.items()],
        "outputs": [grpcclient.InferRequestedOutput(o) for o in outputs] if outputs else None,
    }


async def _stream(
    url: str, requests: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> list[Any]:
    """One ModelStreamInfer call: sends `requests`, half-closes, returns each (result, error) to the end."""

    async def send() -> AsyncIterator[dict[str, Any]]:
        for r in requests:
            yield r

    async with aioclient.InferenceServerClient(url) as client:
        return [item async for item in client.stream_infer(send(), headers=headers)]


def _final(result: Any) -> bool:
    return bool(result.get_response().parameters["triton_final_response"].bool_param)


def _text(result: Any) -> str:
    return b"".join(result.as_numpy("text_output").reshape(-1)).decode()


def test_minimal_config_is_completed_with_both_contracts(server: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(server.url)
    config = client.get_model_config(MODEL, as_json=True)["config"]
    assert config["max_batch_size"] == 64
    assert config["model_transaction_policy"]["decoupled"] is True
    inputs = {t["name"]: t for t in config["input"]}
    assert inputs["text_input"]["data_type"] == "TYPE_STRING" and inputs["text_input"]["optional"]
    assert inputs["input_ids"]["data_type"] == "TYPE_INT32"
    outputs = {t["name"]: t for t in config["output"]}
    assert outputs["output_ids"]["dims"] == ["-1", "-1"]
    metadata = client.get_model_metadata(MODEL, as_json=True)
    shapes = {t["name"]: t["shape"] for t in metadata["inputs"]}
    assert shapes["text_input"] == ["-1", "1"] and shapes["input_ids"] == ["-1", "-1"]


def test_32_concurrent_streams_concatenate_to_the_non_streamed_text(server: RunningServer) -> None:
    prompts = [f"Prompt number {i}: tell me a story" for i in range(32)]

    async def main() -> tuple[list[list[Any]], list[list[Any]]]:
        streamed = [
            _stream(server.url, [_request(f"s{i}", text_input=p, max_tokens=12, stream=True)])
            for i, p in enumerate(prompts)
        ]
        whole = [
            _stream(
                server.url, [_request(f"w{i}", text_input=p, max_tokens=12, exclude_input_in_output=True)]
            )
            for i, p in enumerate(prompts)
        ]
        results = await asyncio.gather(*streamed, *whole)
        return list(results[:32]), list(results[32:])

    streamed, whole = asyncio.run(main())
    for i in range(32):
        assert all(error is None for _, error in streamed[i]), streamed[i]
        deltas = [r for r, _ in streamed[i]]
        assert [_final(r) for r in deltas] == [False] * (len(deltas) - 1) + [True]
        [(one, error)] = whole[i]
        assert error is None and _final(one)
        assert "".join(_text(r) for r in deltas) == _text(one), f"prompt {i}"


def test_token_contract_round_trip_matches_transformers(server: RunningServer) -> None:
    prompt = [1, 23, 45, 67, 89, 101]
    with server.manager.acquire(MODEL) as handle:
        [want] = hf_greedy(handle.backend.spec.version_dir, [prompt], max_new_tokens=8)
    base = {"input_ids": prompt, "input_lengths": [len(prompt)], "request_output_len": [8], "end_id": [0]}

    async def main() -> list[list[Any]]:
        return await asyncio.gather(
            _stream(server.url, [_request("t1", **base, streaming=[True])]),
            _stream(server.url, [_request("t2", **base)]),
        )

    streamed, whole = asyncio.run(main())
    ids = [int(t) for r, _ in streamed for t in r.as_numpy("output_ids")[0][0]]
    assert ids == want
    [(result, error)] = whole
    assert error is None
    assert result.as_numpy("output_ids").tolist() == [[prompt + want]]
    assert result.as_numpy("sequence_length").tolist() == [[len(prompt) + 8]]


def test_cancelled_stream_frees_its_blocks_within_one_step(server: RunningServer) -> None:
    async def main() -> int:
        async def send() -> AsyncIterator[dict[str, Any]]:
            yield _request("long", input_ids=list(range(1, 40)), request_output_len=[500], streaming=[True])
            await asyncio.sleep(3600)  # keep the stream open until it is cancelled

        async with aioclient.InferenceServerClient(server.url) as client:
            responses = client.stream_infer(send())
            got = 0
            async for _result, error in responses:
                assert error is None
                got += 1
                if got == 3:
                    break
            assert _engine_stats(server).kv_blocks_used > 0
            step = _engine_stats(server).step_counter
            responses.cancel()
            return step

    cancelled_at = asyncio.run(main())
    wait_until(lambda: _engine_stats(server).kv_blocks_used == 0, timeout_s=30, what="blocks freed")
    assert _engine_stats(server).step_counter <= cancelled_at + 3
    with server.manager.acquire(MODEL) as handle:
        assert handle.backend.num_in_flight == 0  # type: ignore[attr-defined]


INVALID, UNSUPPORTED, EXHAUSTED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


@pytest.mark.parametrize(
    ("model", "inputs", "code", "fragment"),
    [
        (MODEL, {"text_input": "", "max_tokens": [4]}, INVALID, "text_input is empty"),
        (MODEL, {"text_input": "hi", "max_tokens": [0]}, INVALID, "max_tokens"),
        (MODEL, {"text_input": "hi", "max_tokens": [10**6]}, INVALID, "max_model_len"),
        (MODEL, {"input_ids": [1, 10**6], "request_output_len": [4]}, INVALID, "vocabulary"),
        (MODEL, {"text_input": "hi", "max_tokens": [4], "beam_width": [2]}, UNSUPPORTED, "beam_width=2"),
        (SMALL_POOL, {"input_ids": [1] * 100, "request_output_len": [4]}, EXHAUSTED, "KV blocks"),
    ],
)
def test_bad_inputs_get_their_status_and_leave_running_requests_alone(
    server: RunningServer, model: str, inputs: dict[str, Any], code: grpc.StatusCode, fragment: str
) -> None:
    async def main() -> tuple[list[Any], BaseException | None]:
        running = asyncio.create_task(
            _stream(
                server.url, [_request("ok", input_ids=[1, 2, 3], request_output_len=[24], streaming=[True])]
            )
        )
        error: BaseException | None = None
        try:
            await _stream(server.url, [_request("bad", model=model, **inputs)], {"triton_grpc_error": "true"})
        except grpc.RpcError as e:
            error = e
        return await running, error

    running, error = asyncio.run(main())
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == code and fragment in (error.details() or "")
    assert all(e is None for _, e in running)
    assert sum(r.as_numpy("output_ids").shape[-1] for r, _ in running) == 24
    assert _final(running[-1][0])


def test_stop_by_request_id_on_the_same_stream(server: RunningServer) -> None:
    async def main() -> list[Any]:
        first = asyncio.Event()

        async def send() -> AsyncIterator[dict[str, Any]]:
            yield _request("job-1", input_ids=[5, 6, 7], request_output_len=[400], streaming=[True])
            await first.wait()
            yield _request("job-1", input_ids=[1], input_lengths=[0], request_output_len=[0], stop=[True])

        async with aioclient.InferenceServerClient(server.url) as client:
            out = []
            async for result, error in client.stream_infer(send()):
                out.append((result, error))
                first.set()
            return out

    started = time.monotonic()
    responses = asyncio.run(main())
    assert all(error is None for _, error in responses)
    assert _final(responses[-1][0])
    generated = sum(r.as_numpy("output_ids").shape[-1] for r, _ in responses)
    assert 0 < generated < 400, f"stopped after {generated} tokens in {time.monotonic() - started:.1f}s"
    wait_until(lambda: _engine_stats(server).kv_blocks_used == 0, timeout_s=30, what="blocks freed")


def test_tensorrtllm_without_the_package_is_unavailable_and_the_rest_serves(
    tmp_path: Path, server: RunningServer
) -> None:
    repo = tmp_path / "repo"
    write_engine_dir(repo / "trt" / "1", vocab_size=300)
    (repo / "trt" / "config.pbtxt").write_text('name: "trt"\nbackend: "tensorrtllm"\n')
    with running_server(repo) as srv:
        client = grpcclient.InferenceServerClient(srv.url)
        [entry] = client.get_model_repository_index(as_json=True)["models"]
        assert entry["state"] == "UNAVAILABLE"
        if importlib.util.find_spec("tensorrt_llm") is None:
            assert "tensorrt_llm is not installed" in entry["reason"]
    # The other server's LLM is untouched.
    assert grpcclient.InferenceServerClient(server.url).is_model_ready(MODEL)


def test_tensorrtllm_model_over_grpc_with_the_executor_stand_in(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    engine = write_engine_dir(repo / "trt" / "1", vocab_size=300)
    byte_level_bpe(300).save_pretrained(str(engine))
    (repo / "trt" / "config.pbtxt").write_text(
        'name: "trt"\nbackend: "tensorrtllm"\nmodel_transaction_policy { decoupled: true }\n'
    )
    prompt = "Hello world"

    async def main(url: str) -> tuple[list[Any], list[Any], list[Any]]:
        return await asyncio.gather(
            _stream(url, [_request("s", model="trt", text_input=prompt, max_tokens=[10], stream=[True])]),
            _stream(url, [_request("w", model="trt", text_input=prompt, max_tokens=[10],
                                   exclude_input_in_output=[True])]),
            _stream(url, [_request("t", model="trt", input_ids=[5, 6, 7], request_output_len=[4])]),
        )  # fmt: skip

    with fake_tensorrt_llm(tmp_path) as trt, running_server(repo) as srv:
        streamed, [(whole, error)], [(tokens, token_error)] = asyncio.run(main(srv.url))
        config = grpcclient.InferenceServerClient(srv.url).get_model_config("trt", as_json=True)["config"]
        assert trt.Executor.instances and config["max_batch_size"] == 64
    assert error is None and token_error is None
    assert "".join(_text(r) for r, _ in streamed) == _text(whole)
    ids = [5, 6, 7]
    for _ in range(4):
        ids.append(next_token(ids, 300))
    assert tokens.as_numpy("output_ids").tolist() == [[ids]]
