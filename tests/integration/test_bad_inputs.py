"""Bad requests get the right status and a message naming the offending value; the server keeps serving."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from server.protocol.gen import grpc_service_pb2 as pb
from server.protocol.gen.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from tests.support.server import PROJECT_ROOT, RunningServer, running_server
from tests.support.tensors import fp32, infer_input

WAIT_S = 60.0
ONES = np.ones((1, 16), np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    repo = tmp_path_factory.mktemp("bad-inputs")
    shutil.copytree(PROJECT_ROOT / "model_repo" / "add_sub", repo / "add_sub")
    with running_server(repo) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.url)
    yield c
    assert_still_serving(c)
    c.close()


def assert_still_serving(client: grpcclient.InferenceServerClient) -> None:
    result = client.infer("add_sub", [fp32("INPUT0", ONES), fp32("INPUT1", ONES)])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), ONES * 2)


def expect_error(call: Callable[[], object], code: str, *names: str) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == code, info.value
    for name in names:
        assert name in info.value.message(), (name, info.value.message())
    return str(info.value.message())


BAD = "StatusCode.INVALID_ARGUMENT"


def test_wrong_datatype(client: grpcclient.InferenceServerClient) -> None:
    inputs = [infer_input("INPUT0", ONES.astype(np.int32)), fp32("INPUT1", ONES)]
    expect_error(lambda: client.infer("add_sub", inputs), BAD, "INPUT0", "INT32", "FP32")


def test_wrong_shape(client: grpcclient.InferenceServerClient) -> None:
    inputs = [fp32("INPUT0", np.ones((1, 15), np.float32)), fp32("INPUT1", np.ones((1, 15), np.float32))]
    expect_error(lambda: client.infer("add_sub", inputs), BAD, "INPUT0", "[1,15]")


def test_batch_too_large(client: grpcclient.InferenceServerClient) -> None:
    big = np.ones((9, 16), np.float32)
    # Triton's wording names the limit and the model, not the batch size sent.
    expect_error(
        lambda: client.infer("add_sub", [fp32("INPUT0", big), fp32("INPUT1", big)]), BAD, "<= 8", "add_sub"
    )


def test_missing_input(client: grpcclient.InferenceServerClient) -> None:
    expect_error(lambda: client.infer("add_sub", [fp32("INPUT0", ONES)]), BAD, "INPUT1")


def test_unknown_input(client: grpcclient.InferenceServerClient) -> None:
    inputs = [fp32("INPUT0", ONES), fp32("INPUT1", ONES), fp32("INPUT9", ONES)]
    expect_error(lambda: client.infer("add_sub", inputs), BAD, "INPUT9")


def test_unknown_output(client: grpcclient.InferenceServerClient) -> None:
    outputs = [grpcclient.InferRequestedOutput("OUTPUT7")]
    inputs = [fp32("INPUT0", ONES), fp32("INPUT1", ONES)]
    expect_error(lambda: client.infer("add_sub", inputs, outputs=outputs), BAD, "OUTPUT7")


def _raw_call(server: RunningServer, request: pb.ModelInferRequest) -> None:
    with grpc.insecure_channel(server.url) as channel:
        try:
            GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=WAIT_S)
        except grpc.RpcError as e:
            raise InferenceServerException(msg=e.details(), status=str(e.code())) from None


def _add_sub_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="FP32", shape=[1, 16])
    return request


def test_raw_and_typed_contents_mixed(
    client: grpcclient.InferenceServerClient, server: RunningServer
) -> None:
    request = _add_sub_request()
    request.inputs[0].contents.fp32_contents.extend([1.0] * 16)
    request.raw_input_contents.append(ONES.tobytes())
    expect_error(lambda: _raw_call(server, request), BAD, "INPUT0", "raw_input_contents")


def test_byte_count_mismatch(client: grpcclient.InferenceServerClient, server: RunningServer) -> None:
    request = _add_sub_request()
    request.raw_input_contents.extend([ONES.tobytes()[:60], ONES.tobytes()])
    expect_error(lambda: _raw_call(server, request), BAD, "INPUT0", "60", "64")


def test_unknown_datatype_string(client: grpcclient.InferenceServerClient, server: RunningServer) -> None:
    request = _add_sub_request()
    request.inputs[1].datatype = "FLOAT32"
    request.raw_input_contents.extend([ONES.tobytes(), ONES.tobytes()])
    expect_error(lambda: _raw_call(server, request), BAD, "FLOAT32", "INPUT1")


@pytest.mark.parametrize(
    ("model", "version", "code", "names"),
    [
        ("nonexistent_model", "", "StatusCode.NOT_FOUND", ("nonexistent_model",)),
        ("add_sub", "3", "StatusCode.NOT_FOUND", ("add_sub", "3")),
        ("add_sub", "v1", BAD, ("'v1'",)),
    ],
)
def test_unknown_model_or_version(
    client: grpcclient.InferenceServerClient, model: str, version: str, code: str, names: tuple[str, ...]
) -> None:
    inputs = [fp32("INPUT0", ONES), fp32("INPUT1", ONES)]
    expect_error(lambda: client.infer(model, inputs, model_version=version), code, *names)


def test_reserved_parameter_key(client: grpcclient.InferenceServerClient, server: RunningServer) -> None:
    request = _add_sub_request()
    request.raw_input_contents.extend([ONES.tobytes(), ONES.tobytes()])
    request.parameters["triton_secret"].bool_param = True
    expect_error(lambda: _raw_call(server, request), BAD, "triton_")
