"""OTLP trace receivers for tests: gRPC (TraceService from opentelemetry-proto) and HTTP (/v1/traces).

    with OtlpHttpReceiver() as rx:                 # rx.url -> http://127.0.0.1:<port>/v1/traces
        ... run traced requests ...
        spans = rx.wait_for(lambda spans: len(spans) >= 3)
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids as hex; `parent_span_id` is "" for a root."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int]]
    resource: dict[str, Any]
    scope: str
    status_code: int
    status_message: str

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def _value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


class _Collector:
    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._cond = threading.Condition()
        self.requests = 0

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = []
        for rs in request.resource_spans:
            resource = _attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(), kind=s.kind, start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano, attributes=_attributes(s.attributes),
                        events=[(e.name, e.time_unix_nano) for e in s.events], resource=resource,
                        scope=ss.scope.name, status_code=s.status.code, status_message=s.status.message,
                    ))  # fmt: skip
        with self._cond:
            self._spans.extend(spans)
            self.requests += 1
            self._cond.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 30.0
    ) -> list[ReceivedSpan]:
        """Every span received, once `done(spans)` holds; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not done(list(self._spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [s.name for s in self._spans]
                    raise AssertionError(f"OTLP receiver: condition not met in {timeout_s}s; got {names}")
                self._cond.wait(left)
            return list(self._spans)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: _Collector) -> None:
        self._collector = collector

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._collector.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpGrpcReceiver(_Collector):
    """An OTLP/gRPC collector on a free loopback port; `endpoint` is what an exporter is given."""

    def __init__(self) -> None:
        super().__init__()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server.start()

    def close(self) -> None:
        self._server.stop(None)

    def __enter__(self) -> OtlpGrpcReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OtlpHttpReceiver(_Collector):
    """An OTLP/HTTP collector (binary protobuf, optionally gzip/deflate) on a free loopback port."""

    def __init__(self) -> None:
        super().__init__()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                collector.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="otlp-http")
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> OtlpHttpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
