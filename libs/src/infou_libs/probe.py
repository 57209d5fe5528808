"""`python -m infou_libs.probe [--live]`: the container's own health check (Docker HEALTHCHECK).

One image runs every process, so the probe asks whichever this container is: a gRPC service
(INFOU_GRPC_PORT set) through the standard gRPC health service, the gateway (otherwise) over
HTTP. Without `--live` it asks readiness (dependencies included: what compose's
`service_healthy` waits for); with `--live` only whether the process answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from infou_libs.grpc_server import LIVENESS_SERVICE


def grpc_serving(port: int, service: str, timeout: float) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(port: int, path: str, timeout: float) -> bool:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infou_libs.probe", description=__doc__)
    parser.add_argument("--live", action="store_true", help="liveness only (no dependencies)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    grpc_port = os.environ.get("INFOU_GRPC_PORT")
    if grpc_port:
        ok = grpc_serving(int(grpc_port), LIVENESS_SERVICE if args.live else "", args.timeout)
    else:
        port = int(os.environ.get("INFOU_PORT", "8000"))
        ok = http_ok(port, "/live" if args.live else "/ready", args.timeout)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
