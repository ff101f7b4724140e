"""ModelInferResponse straight to protobuf wire bytes: the unary hot path skips building the message."""

from __future__ import annotations

from typing import Any

from server.protocol.convert import response_to_pb
from server.protocol.tensor_codec import encode_raw
from server.types import DataType, InferResponse

# Field tags (field number << 3 | wire type 2, length-delimited) of ModelInferResponse (PROTOCOL.md 1.4)
_MODEL_NAME, _MODEL_VERSION, _ID, _OUTPUTS, _RAW = b"\x0a", b"\x12", b"\x1a", b"\x2a", b"\x32"
# ... and of its InferOutputTensor
_NAME, _DATATYPE, _SHAPE = b"\x0a", b"\x12", b"\x1a"
_ONE_BYTE = [bytes((n,)) for n in range(128)]
_MAX_HEADERS = 4096

# (name, datatype, shape) -> the encoded outputs entry: most models answer with the same few every time
_headers: dict[tuple[str, DataType, tuple[int, ...]], bytes] = {}
# (model name, version) -> their two encoded fields
_models: dict[tuple[str, str], bytes] = {}


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as 64-bit two's complement (int64 fields)."""
    if 0 <= n < 128:
        return _ONE_BYTE[n]
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field; proto3 leaves empty ones out."""
    return tag + varint(len(data)) + data if data else b""


def _remember(cache: dict[Any, bytes], key: Any, value: bytes) -> bytes:
    """Caches `value`; a cache that fills up (keys that vary without end) starts over rather than grow."""
    if len(cache) >= _MAX_HEADERS:
        cache.clear()
    cache[key] = value
    return value


def _output_header(name: str, datatype: DataType, shape: tuple[int, ...]) -> bytes:
    """The outputs entry of one tensor (name, datatype, shape), encoded (and cached)."""
    dims = b"".join(varint(d) for d in shape)
    body = b"".join(
        (_field(_NAME, name.encode()), _field(_DATATYPE, datatype.value.encode()), _field(_SHAPE, dims))
    )
    return _remember(_headers, (name, datatype, shape), _OUTPUTS + varint(len(body)) + body)


def _model_fields(name: str, version: str) -> bytes:
    """model_name and model_version, encoded (and cached)."""
    fields = _field(_MODEL_NAME, name.encode()) + _field(_MODEL_VERSION, version.encode())
    return _remember(_models, (name, version), fields)


def infer_response_bytes(response: InferResponse) -> bytes:
    """The serialized ModelInferResponse of `response`, byte for byte what `response_to_pb(response)
    .SerializeToString()` gives, built without the message (a response with parameters takes that way).

    Runs for every unary request: the cache lookups and one-byte lengths are written out, not called.
    """
    if response.parameters:
        return response_to_pb(response).SerializeToString()
    name, version = response.model_name, response.model_version
    parts = [_models.get((name, version)) or _model_fields(name, version)]
    if response.id:
        rid = response.id.encode()
        parts.append(_ID + (_ONE_BYTE[len(rid)] if len(rid) < 128 else varint(len(rid))) + rid)
    raws = []
    for tensor in response.outputs:
        name, datatype, shape = tensor.name, tensor.datatype, tensor.data.shape
        parts.append(_headers.get((name, datatype, shape)) or _output_header(name, datatype, shape))
        raw = encode_raw(tensor)
        size = len(raw)
        raws.append(_RAW + (_ONE_BYTE[size] if size < 128 else varint(size)))
        raws.append(raw)
    parts += raws
    return b"".join(parts)
