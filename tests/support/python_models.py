"""Python-backend models written into a test's repository (config.pbtxt + model.py), for end-to-end tests.

- `write_identity_all_types(repo)`: one input per datatype (`IN_<DT>`, dims [-1]) echoed as `OUT_<DT>`.
- `write_versioned(repo, name, version)`: echoes FP32 `X` as `Y` and returns its version in INT32 `VERSION`.
- `write_cancel_watcher(repo, name, marker_dir, decoupled)`: writes `<marker_dir>/started-<request id>`,
  waits until `is_cancelled()` is true, then writes `<marker_dir>/<request id>` and answers an error; it
  gives up after 60 s.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

ALL_DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES", "BF16",
)  # fmt: skip


def _config_type(datatype: str) -> str:
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def write_python_model(
    repo: Path, name: str, config: str, code: str, versions: tuple[int, ...] = (1,)
) -> Path:
    """`<repo>/<name>/config.pbtxt` (`config`, dedented) and `<version>/model.py` (`code`) per version."""
    model_dir = repo / name
    for v in versions:
        (model_dir / str(v)).mkdir(parents=True, exist_ok=True)
        (model_dir / str(v) / "model.py").write_text(textwrap.dedent(code))
    (model_dir / "config.pbtxt").write_text(textwrap.dedent(config))
    return model_dir


def write_marker_model(directory: Path, name: str, config: str, code: str) -> tuple[Path, Path]:
    """A repository under `directory` with one Python model whose config takes its marker directory
    (where the model drops files to say what it is doing) through a `%s`; returns (repo, markers)."""
    markers = directory / "markers"
    markers.mkdir()
    repo = directory / "repo"
    write_python_model(repo, name, config % markers, code)
    return repo, markers


IDENTITY_CODE = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            outs = [pb_utils.Tensor(t.name().replace("IN_", "OUT_", 1), t.as_numpy())
                    for t in request.inputs()]
            responses.append(pb_utils.InferenceResponse(output_tensors=outs))
        return responses
"""


def write_identity_all_types(repo: Path, name: str = "identity") -> Path:
    def tensors(io: str) -> str:
        return ",\n".join(
            f'  {{ name: "{io}_{dt}", data_type: {_config_type(dt)}, dims: [ -1 ] }}' for dt in ALL_DATATYPES
        )

    config = (
        f'backend: "python"\nmax_batch_size: 0\ninput [\n{tensors("IN")}\n]\noutput [\n{tensors("OUT")}\n]\n'
    )
    return write_python_model(repo, name, config, IDENTITY_CODE)


VERSIONED_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "X", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [
  { name: "Y", data_type: TYPE_FP32, dims: [ -1 ] },
  { name: "VERSION", data_type: TYPE_INT32, dims: [ 1 ] }
]
"""
VERSIONED_CODE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.version = int(args["model_version"])

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            version = pb_utils.Tensor("VERSION", np.array([self.version], dtype=np.int32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("Y", x), version]))
        return responses
"""


def write_versioned(repo: Path, name: str, versions: tuple[int, ...] = (1,)) -> Path:
    return write_python_model(repo, name, VERSIONED_CONFIG, VERSIONED_CODE, versions)


CANCEL_CODE = """
import json
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.marker_dir = config["parameters"]["marker_dir"]["string_value"]
        self.decoupled = config.get("model_transaction_policy", {}).get("decoupled", False)

    def _wait(self, cancelled, request_id):
        with open(os.path.join(self.marker_dir, "started-" + request_id), "w") as f:
            f.write("started")
        deadline = time.monotonic() + 60
        while not cancelled() and time.monotonic() < deadline:
            time.sleep(0.005)
        if cancelled():
            with open(os.path.join(self.marker_dir, request_id), "w") as f:
                f.write("cancelled")
        error = pb_utils.TritonError("cancelled", pb_utils.TritonError.CANCELLED)
        return pb_utils.InferenceResponse(error=error)

    def execute(self, requests):
        if self.decoupled:
            for request in requests:
                sender = request.get_response_sender()
                sender.send(self._wait(sender.is_cancelled, request.request_id()))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return None
        return [self._wait(r.is_cancelled, r.request_id()) for r in requests]
"""


def write_cancel_watcher(repo: Path, name: str, marker_dir: Path, decoupled: bool = False) -> Path:
    config = f"""
    backend: "python"
    max_batch_size: 0
    input [ {{ name: "X", data_type: TYPE_FP32, dims: [ -1 ] }} ]
    output [ {{ name: "Y", data_type: TYPE_FP32, dims: [ -1 ] }} ]
    parameters {{ key: "marker_dir" value: {{ string_value: "{marker_dir}" }} }}
    model_transaction_policy {{ decoupled: {str(decoupled).lower()} }}
    instance_group [ {{ count: 2, kind: KIND_CPU }} ]
    """
    return write_python_model(repo, name, config, CANCEL_CODE)
