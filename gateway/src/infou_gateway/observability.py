"""Gateway request metrics, the access log, and the average response time /health reports.

`RequestRecorder` is pure ASGI: it only watches the `http.response.start` message go by (no
task, no stream, no wrapped body), so it costs a clock read and a histogram observation. The
access log writes every refusal and error (status >= 400) and a sample of the successes
(`INFOU_ACCESS_LOG_SAMPLE_RATIO`); the histogram counts every request either way.
"""

from __future__ import annotations

import random
import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infou_libs.logging import get_logger

log = get_logger(__name__)

HTTP_LATENCY = Histogram(
    "infou_http_request_duration_seconds",
    "Gateway HTTP request time",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_UNTIMED = frozenset({"/metrics"})


class RequestRecorder:
    """Times every HTTP request into the histogram and writes the (sampled) access log."""

    def __init__(self, app: ASGIApp, *, sample_ratio: float) -> None:
        self.app = app
        self.sample_ratio = sample_ratio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            # Only an id the session service accepted: a refused one is whatever was sent.
            session_id = scope.get("path_params", {}).get("session_id") if status < 400 else None
            record_request(
                scope["method"],
                route,
                status,
                time.perf_counter() - start,
                session_id,
                self.sample_ratio,
            )


# Label children by (method, route, status): `labels()` takes a lock and builds a key.
_SERIES: dict[tuple[str, str, int], Histogram] = {}


def record_request(
    method: str,
    route: str,
    status: int,
    elapsed: float,
    session_id: str | None,
    sample_ratio: float,
) -> None:
    """One request into the histogram, and into the access log if it failed or is sampled."""
    if route in _UNTIMED:
        return
    series = _SERIES.get((method, route, status))
    if series is None:
        series = _SERIES[(method, route, status)] = HTTP_LATENCY.labels(method, route, str(status))
    series.observe(elapsed)
    if status < 400 and (sample_ratio <= 0 or random.random() >= sample_ratio):  # noqa: S311 - sampling, not security
        return
    log.info(
        "http_request",
        endpoint=route,
        method=method,
        status=status,
        duration_ms=round(elapsed * 1000, 1),
        session_id=session_id,
    )


def average_response_ms() -> float:
    """Mean request time since start, from the histogram's _sum and _count."""
    total = count = 0.0
    for metric in HTTP_LATENCY.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return (total / count * 1000) if count else 0.0
