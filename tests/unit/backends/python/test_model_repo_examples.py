"""The example Python models in model_repo/, loaded from their config.pbtxt the way the server does."""

from __future__ import annotations

import numpy as np

from server.backends.python.backend import PythonBackend
from tests.support.tensor_models import MODEL_REPO, load_backend, make_request, outputs_of, run_requests


def test_add_sub_batches_concurrent_requests_and_answers_each() -> None:
    backend = load_backend(MODEL_REPO / "add_sub")
    assert isinstance(backend, PythonBackend)
    rng = np.random.default_rng(0)
    inputs = [
        {
            "INPUT0": rng.random((rows, 16), dtype=np.float32),
            "INPUT1": rng.random((rows, 16), dtype=np.float32),
        }
        for rows in (1, 2, 1, 3, 1, 1, 4, 2)
    ]
    try:
        results = run_requests(backend, *(make_request("add_sub", x, str(i)) for i, x in enumerate(inputs)))
        stats = backend.spec.stats.snapshot()
    finally:
        backend.unload()
    for i, (x, [resp]) in enumerate(zip(inputs, results, strict=True)):
        out = outputs_of(resp)
        assert resp.id == str(i)
        np.testing.assert_allclose(out["OUTPUT0"], x["INPUT0"] + x["INPUT1"])
        np.testing.assert_allclose(out["OUTPUT1"], x["INPUT0"] - x["INPUT1"])
    assert stats.pending == 0 and 1 <= stats.execution_count <= len(inputs)
    assert sum(size * b.compute_infer.count for size, b in stats.batches.items()) == 15  # every row ran once


def test_add_sub_returns_only_the_requested_output() -> None:
    backend = load_backend(MODEL_REPO / "add_sub")
    x = {"INPUT0": np.ones((1, 16), np.float32), "INPUT1": np.ones((1, 16), np.float32)}
    try:
        [[resp]] = run_requests(backend, make_request("add_sub", x, outputs=("OUTPUT1",)))
    finally:
        backend.unload()
    assert list(outputs_of(resp)) == ["OUTPUT1"]
    np.testing.assert_array_equal(outputs_of(resp)["OUTPUT1"], np.zeros((1, 16)))
