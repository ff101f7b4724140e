"""PythonBackend with non-decoupled models: loading, execute results, error isolation, batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from server.errors import BackendError, LoadError, StatusKind
from tests.support.tensor_models import load_backend, make_request, outputs_of, run_requests
from tests.unit.backends.python.model_files import write_model

ADD_ONE = """
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            out = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
                if x.size and x.reshape(-1)[0] < 0:
                    out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                        "negative input", pb_utils.TritonError.INVALID_ARG)))
                elif x.size and x.reshape(-1)[0] == 13:
                    raise ValueError("unlucky 13")
                else:
                    out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", (x + 1).astype(np.float32))]))
            return out
"""


def x(*values: float) -> dict[str, np.ndarray]:
    return {"X": np.array(values, dtype=np.float32)}


def test_execute_results_reach_each_request(tmp_path: Path) -> None:
    model_dir, config = write_model(tmp_path, "add_one", ADD_ONE)
    backend = load_backend(model_dir, config=config)
    try:
        outs = run_requests(
            backend, make_request("add_one", x(1, 2), "a"), make_request("add_one", x(5), "b")
        )
    finally:
        backend.unload()
    assert [r[0].id for r in outs] == ["a", "b"]
    np.testing.assert_array_equal(outputs_of(outs[0][0])["Y"], [2, 3])
    np.testing.assert_array_equal(outputs_of(outs[1][0])["Y"], [6])
    assert all(len(r) == 1 and r[0].final for r in outs)


def test_error_response_and_exception_fail_only_their_request(tmp_path: Path) -> None:
    model_dir, config = write_model(tmp_path, "add_one", ADD_ONE)
    backend = load_backend(model_dir, config=config)
    try:
        [[neg]] = run_requests(backend, make_request("add_one", x(-1)))
        [[boom]] = run_requests(backend, make_request("add_one", x(13)))
        [[ok]] = run_requests(backend, make_request("add_one", x(1)))
        assert backend.ready
    finally:
        backend.unload()
    assert isinstance(neg.error, BackendError) and neg.error.kind is StatusKind.INVALID_ARG
    assert str(neg.error) == "negative input"
    assert boom.error is not None and "ValueError: unlucky 13" in str(boom.error)
    assert "add_one_0_0" in str(boom.error)
    np.testing.assert_array_equal(outputs_of(ok)["Y"], [2])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return []", "returned 0 responses for 1 requests"),
        ("return None", "returned None from execute without sending a response"),
        ("return ['nope']", "answered request 'r' with str"),
        ("return [pb_utils.InferenceResponse([pb_utils.Tensor('Y', np.zeros(2))])]", "has datatype FP64"),
    ],
)
def test_malformed_results_fail_the_request_clearly(tmp_path: Path, body: str, expected: str) -> None:
    code = f"""
        import numpy as np
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                {body}
    """
    model_dir, config = write_model(tmp_path, "bad", code)
    backend = load_backend(model_dir, config=config)
    try:
        [[resp]] = run_requests(backend, make_request("bad", x(1)))
    finally:
        backend.unload()
    assert isinstance(resp.error, BackendError) and expected in str(resp.error)


def test_requested_outputs_filter_what_the_model_returns(tmp_path: Path) -> None:
    code = """
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                out = []
                for r in requests:
                    x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
                    names = r.requested_output_names()
                    tensors = [pb_utils.Tensor(n, x) for n in ("Y", "Z", "UNDECLARED")]
                    out.append(pb_utils.InferenceResponse(tensors, parameters={"asked": ",".join(names)}))
                return out
    """
    io = {"output": [{"name": n, "data_type": "TYPE_FP32", "dims": ["-1"]} for n in ("Y", "Z")]}
    model_dir, config = write_model(tmp_path, "two_out", code, io)
    backend = load_backend(model_dir, config=config)
    try:
        [[only_z]] = run_requests(backend, make_request("two_out", x(1), outputs=("Z",)))
        [[both]] = run_requests(backend, make_request("two_out", x(1)))
    finally:
        backend.unload()
    assert list(outputs_of(only_z)) == ["Z"] and only_z.parameters == {"asked": "Z"}
    assert list(outputs_of(both)) == ["Y", "Z"] and both.parameters == {"asked": "Y,Z"}


def test_initialize_args_and_one_model_object_per_instance(tmp_path: Path) -> None:
    code = """
        import json
        import numpy as np
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def initialize(self, args):
                self.args = args

            def execute(self, requests):
                blob = np.array([json.dumps(self.args).encode()], dtype=object)
                return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", blob)]) for _ in requests]
    """
    io = {
        "output": [{"name": "Y", "data_type": "TYPE_STRING", "dims": ["1"]}],
        "instance_group": [{"count": 2, "kind": "KIND_CPU"}],
    }
    model_dir, config = write_model(tmp_path, "args", code, io)
    backend = load_backend(model_dir, config=config)
    try:
        [[resp]] = run_requests(backend, make_request("args", x(1)))
    finally:
        backend.unload()
    args = json.loads(outputs_of(resp)["Y"][0])
    assert args["model_name"] == "args" and args["model_version"] == "1"
    assert args["model_instance_name"] in ("args_0_0", "args_0_1")
    assert args["model_instance_kind"] == "CPU" and args["model_instance_device_id"] == "0"
    assert args["model_repository"] == str(model_dir)
    cfg = json.loads(args["model_config"])
    assert cfg["name"] == "args" and cfg["input"][0]["dims"] == [-1]
    assert cfg["instance_group"][0]["count"] == 2


def test_async_execute_and_sibling_imports(tmp_path: Path) -> None:
    code = """
        import asyncio
        import triton_python_backend_utils as pb_utils
        from helper_add import add

        class TritonPythonModel:
            async def execute(self, requests):
                await asyncio.sleep(0)
                return [pb_utils.InferenceResponse(
                    [pb_utils.Tensor("Y", add(pb_utils.get_input_tensor_by_name(r, "X").as_numpy()))])
                    for r in requests]
    """
    model_dir, config = write_model(tmp_path, "async_model", code)
    (model_dir / "1" / "helper_add.py").write_text("def add(x):\n    return x + 10\n")
    backend = load_backend(model_dir, config=config)
    try:
        [[resp]] = run_requests(backend, make_request("async_model", x(1)))
    finally:
        backend.unload()
    np.testing.assert_array_equal(outputs_of(resp)["Y"], [11])


def test_non_decoupled_model_may_answer_through_the_response_sender(tmp_path: Path) -> None:
    code = """
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                for r in requests:
                    x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
                    sender = r.get_response_sender()
                    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2)]))
                    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return None
    """
    model_dir, config = write_model(tmp_path, "sender", code)
    backend = load_backend(model_dir, config=config)
    try:
        [[resp]] = run_requests(backend, make_request("sender", x(3)))
    finally:
        backend.unload()
    assert resp.final
    np.testing.assert_array_equal(outputs_of(resp)["Y"], [6])


def test_sender_asked_for_after_the_returned_answer_is_closed(tmp_path: Path) -> None:
    # senders are built lazily: one first asked for after execute's return value answered is closed
    code = """
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def initialize(self, args):
                self.kept = []

            def execute(self, requests):
                if self.kept:
                    late = self.kept.pop().get_response_sender()
                    try:
                        late.send(pb_utils.InferenceResponse([]))
                        outcome = "sent"
                    except pb_utils.TritonModelException as e:
                        outcome = str(e)
                    late.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)  # ignored, as in Triton
                    return [pb_utils.InferenceResponse(parameters={"late": outcome}) for _ in requests]
                self.kept.extend(requests)
                return [pb_utils.InferenceResponse(parameters={"late": "first"}) for _ in requests]
    """
    model_dir, config = write_model(tmp_path, "late", code)
    backend = load_backend(model_dir, config=config)
    try:
        [[first]] = run_requests(backend, make_request("late", x(1)))
        [[second]] = run_requests(backend, make_request("late", x(2)))
    finally:
        backend.unload()
    assert first.error is None and first.parameters == {"late": "first"}
    assert second.error is None
    assert second.parameters == {"late": "Unable to send response. Response sender has been closed."}


def test_bls_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    code = """
        import triton_python_backend_utils as pb_utils

        class TritonPythonModel:
            def execute(self, requests):
                pb_utils.InferenceRequest(model_name="other", inputs=[], requested_output_names=["Y"]).exec()
    """
    model_dir, config = write_model(tmp_path, "bls", code)
    backend = load_backend(model_dir, config=config)
    try:
        [[resp]] = run_requests(backend, make_request("bls", x(1)))
    finally:
        backend.unload()
    assert resp.error is not None and "BLS" in str(resp.error) and "not supported" in str(resp.error)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('no GPU')\n",
         "RuntimeError: no GPU"),
        ("class TritonPythonModel:\n    def execute(self, requests)\n", "SyntaxError"),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
        ("class SomethingElse:\n    pass\n", "does not define a class named TritonPythonModel"),
    ],
)  # fmt: skip
def test_load_failures_are_load_errors_with_the_reason(tmp_path: Path, code: str, expected: str) -> None:
    model_dir, config = write_model(tmp_path, "broken", code)
    with pytest.raises(LoadError, match=expected):
        load_backend(model_dir, config=config)


def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    model_dir, config = write_model(tmp_path, "missing", "")
    (model_dir / "1" / "model.py").unlink()
    with pytest.raises(LoadError, match=str(model_dir / "1" / "model.py")):
        load_backend(model_dir, config=config)


def test_finalize_runs_on_unload(tmp_path: Path) -> None:
    marker = tmp_path / "finalized"
    code = f"""
        class TritonPythonModel:
            def execute(self, requests):
                return []

            def finalize(self):
                open({str(marker)!r}, "w").close()
    """
    model_dir, config = write_model(tmp_path, "fin", code)
    backend = load_backend(model_dir, config=config)
    assert backend.ready
    backend.unload()
    assert marker.exists() and not backend.ready
