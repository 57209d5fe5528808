"""Gateway request metrics and the average response time /health reports."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Histogram

from infou_libs.logging import get_logger

log = get_logger(__name__)

HTTP_LATENCY = Histogram(
    "infou_http_request_duration_seconds",
    "Gateway HTTP request time",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
)


async def record_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        elapsed = time.perf_counter() - start
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path not in ("/metrics",):
            HTTP_LATENCY.labels(request.method, path, str(status)).observe(elapsed)
            log.info(
                "http_request",
                endpoint=path,
                method=request.method,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
                # Only an id the session service accepted: a refused one is whatever was sent.
                session_id=request.path_params.get("session_id") if status < 400 else None,
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
