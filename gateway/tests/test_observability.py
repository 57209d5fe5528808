"""The request recorder: every request timed, refusals always logged, successes sampled."""

from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from infou_gateway.observability import RequestRecorder


def _app(sample_ratio: float) -> Any:
    app = FastAPI()

    @app.get("/fine/{session_id}")
    async def fine(session_id: str) -> dict[str, str]:
        return {"session_id": session_id}

    return RequestRecorder(app, sample_ratio=sample_ratio)


def _count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "infou_http_request_duration_seconds_count",
        {"method": "GET", "route": route, "status": status},
    )
    return value or 0.0


async def _get(app: Any, path: str) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return (await client.get(path)).status_code


async def test_successes_are_sampled_and_refusals_always_logged() -> None:
    before = _count("/fine/{session_id}", "200")
    with capture_logs() as quiet:
        assert await _get(_app(0.0), "/fine/s1") == 200
        assert await _get(_app(0.0), "/nowhere") == 404
    with capture_logs() as every:
        assert await _get(_app(1.0), "/fine/s2") == 200
    assert [(e["endpoint"], e["status"]) for e in quiet if e["event"] == "http_request"] == [
        ("unmatched", 404)
    ]
    assert [(e["session_id"], e["status"]) for e in every if e["event"] == "http_request"] == [
        ("s2", 200)
    ]
    # The histogram counts every request, logged or not.
    assert _count("/fine/{session_id}", "200") == before + 2
