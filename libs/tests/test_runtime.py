"""A service started the way production starts it (`python -m infou_<name>`): on the event loop
INFOU_EVENT_LOOP names, serving gRPC, and leaving cleanly on SIGTERM."""

import asyncio
import json
import os
import signal
import sys
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from infou_devtools.engines import free_port


async def _next_event(stream: asyncio.StreamReader, event: str) -> dict[str, Any]:
    while line := await stream.readline():
        if line.startswith(b"{"):
            record: dict[str, Any] = json.loads(line)
            if record.get("event") == event:
                return record
    raise AssertionError(f"the process ended its output before {event!r}")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_service_runs_on_the_configured_loop_and_stops_on_sigterm(
    loop: str, fresh_database_url: str, nats_url: str
) -> None:
    port = free_port()
    env = os.environ | {
        "INFOU_DATABASE_URL": fresh_database_url,
        "INFOU_NATS_URL": nats_url,
        "INFOU_GRPC_PORT": str(port),
        "INFOU_METRICS_PORT": "0",
        "INFOU_LOG_JSON": "true",
        "INFOU_EVENT_LOOP": loop,
        "PYTHONUNBUFFERED": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infou_feedback",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        ready = await asyncio.wait_for(_next_event(proc.stdout, "service_ready"), 120)
        assert ready["event_loop"] == loop
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(_next_event(proc.stdout, "service_stopped"), 60)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
