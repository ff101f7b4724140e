"""ModelStatistics `response_stats` through stock tritonclient: per response index, decoupled models only."""

from __future__ import annotations

import queue
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from tests.support.server import PROJECT_ROOT, running_server, wait_until
from tests.support.tensors import infer_input

WAIT_S = 60.0


def _counts(client: grpcclient.InferenceServerClient, model: str) -> dict[str, dict[str, int]]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return {
        index: {kind: int(d.get("count", 0)) for kind, d in entry.items()}
        for index, entry in stats.get("response_stats", {}).items()
    }


def test_response_stats_count_each_streamed_response_by_index(tmp_path: Path) -> None:
    for name in ("streaming", "add_sub"):
        shutil.copytree(PROJECT_ROOT / "model_repo" / name, tmp_path / name)
    with running_server(tmp_path) as srv:
        client = grpcclient.InferenceServerClient(srv.url)
        received: queue.Queue[Any] = queue.Queue()
        client.start_stream(callback=lambda result, error: received.put(error or result))
        for request_id, n in (("a", 3), ("b", 1)):
            inputs = [infer_input("IN", np.array([n], dtype=np.int32))]
            client.async_stream_infer("streaming", inputs, request_id=request_id)
        replies = [received.get(timeout=WAIT_S) for _ in range(4)]
        client.stop_stream()
        assert all(not isinstance(r, Exception) for r in replies), replies
        by_request = sorted(r.get_response().id for r in replies)
        assert by_request == ["a", "a", "a", "b"]

        # Each request: its data responses, then the final flag alone (not sent: not requested).
        expected = {
            "0": {"success": 2, "compute_infer": 2, "compute_output": 2},
            "1": {"success": 1, "empty_response": 1, "compute_infer": 2, "compute_output": 1},
            "2": {"success": 1, "compute_infer": 1, "compute_output": 1},
            "3": {"empty_response": 1, "compute_infer": 1},
        }
        counts = wait_until(
            lambda: (c := _counts(client, "streaming")) == _with_zeros(expected) and c,
            WAIT_S,
            what="response_stats to count every response",
        )
        assert sum(d.get("success", 0) for d in counts.values()) == len(replies)

        ones = np.ones((1, 16), dtype=np.float32)
        client.infer("add_sub", [infer_input("INPUT0", ones), infer_input("INPUT1", ones)])
        assert _counts(client, "add_sub") == {}  # unary models keep no per-response statistics


def _with_zeros(expected: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    kinds = ("compute_infer", "compute_output", "success", "fail", "empty_response", "cancel")
    return {i: {k: counts.get(k, 0) for k in kinds} for i, counts in expected.items()}
