"""Per-client rate limit (PRD §5.4: 100 requests a minute per IP), in Redis, failing open."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.asyncio import Redis

from infou_gateway.errors import error_body
from infou_libs.logging import get_logger

log = get_logger(__name__)

RATE_LIMITED = Counter("infou_rate_limited_total", "Requests refused by the per-IP rate limit")
RATE_LIMIT_ERRORS = Counter(
    "infou_rate_limit_errors_total", "Rate-limit checks skipped because Redis failed"
)
# Probes, metrics and docs are never limited.
EXEMPT_PATHS = frozenset({"/health", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect"})
WINDOW_SECONDS = 60


class RateLimiter:
    """A fixed one-minute window per client: INCR a key named after the client and the minute."""

    def __init__(self, per_minute: int, trust_forwarded_for: bool = False) -> None:
        self.per_minute = per_minute
        self.trust_forwarded_for = trust_forwarded_for

    def client_of(self, request: Request) -> str:
        if self.trust_forwarded_for:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    async def hit(self, redis: Redis, client: str, now: float | None = None) -> tuple[int, int]:
        """Counts one request; returns (requests in this window, seconds until it ends)."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        key = f"rl:ip:{client}:{window}"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
        return int(count), WINDOW_SECONDS - int(now % WINDOW_SECONDS)

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if self.per_minute <= 0 or request.url.path in EXEMPT_PATHS:
            return await call_next(request)
        try:
            redis = request.app.state.gateway.cache.redis  # the gateway's one Redis client
            count, reset = await self.hit(redis, self.client_of(request))
        except Exception as exc:  # Redis down: serve rather than refuse everyone
            RATE_LIMIT_ERRORS.inc()
            log.warning("rate_limit_unavailable", error=str(exc))
            return await call_next(request)
        headers = {
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, self.per_minute - count)),
            "X-RateLimit-Reset": str(reset),
        }
        if count > self.per_minute:
            RATE_LIMITED.inc()
            log.warning("rate_limited", endpoint=request.url.path, requests=count)
            body = error_body(
                "RATE_LIMITED",
                f"요청 한도({self.per_minute}회/분)를 초과했습니다. {reset}초 후 다시 시도하세요.",
                retry_after=reset,
            )
            return JSONResponse(
                body, status_code=429, headers={**headers, "Retry-After": str(reset)}
            )
        response = await call_next(request)
        response.headers.update(headers)
        return response
