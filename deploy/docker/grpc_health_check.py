#!/usr/bin/env python3
"""Container health check: exit 0 when Hangar's standard gRPC health service answers SERVING.

Docker's HEALTHCHECK runs it; Kubernetes uses its native gRPC probes instead.
Usage: grpc_health_check.py [--address localhost:8001] [--service ""] [--timeout 2]
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="localhost:8001")
    parser.add_argument("--service", default="", help='"" = the whole server (ready when every model is)')
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    try:
        with grpc.insecure_channel(args.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.RpcError as e:
        print(f"unhealthy: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"unhealthy: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
