"""PRD §5.4: each client IP gets 100 requests a minute; probes are exempt; Redis down fails open."""

import uuid

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from infou_devtools.engines import free_port
from infou_gateway.app import create_app
from infou_gateway.ratelimit import RateLimiter
from infou_gateway.settings import GatewaySettings


def _app(redis_url: str, limit: int) -> FastAPI:
    closed = free_port()
    return create_app(
        GatewaySettings(
            redis_url=redis_url,
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x",
            nats_url=f"nats://127.0.0.1:{closed}",
            rate_limit_per_minute=limit,
            health_timeout_seconds=0.2,
            **{
                f"{s}_addr": f"127.0.0.1:{closed}"
                for s in ("catalog", "session", "generation", "feedback", "realtime")
            },
        )
    )


async def test_requests_over_the_limit_get_429_with_retry_after(redis_url: str) -> None:
    me, neighbour = (f"203.0.113.{uuid.uuid4().hex[:6]}" for _ in range(2))  # fresh keys per run
    app = _app(redis_url, limit=3)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(me, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            replies = [await client.get("/no-such-page") for _ in range(4)]
            health = await client.get("/health")
        other = httpx.ASGITransport(app=app, client=(neighbour, 5000))
        async with httpx.AsyncClient(transport=other, base_url="http://t") as client:
            someone_else = await client.get("/no-such-page")
    assert [r.status_code for r in replies] == [404, 404, 404, 429]
    assert replies[0].headers["X-RateLimit-Remaining"] == "2"
    refused = replies[3]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert health.status_code != 429  # probes are never limited
    assert someone_else.status_code == 404  # the limit is per client


async def test_the_window_resets_each_minute(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    client = f"198.51.100.{uuid.uuid4().hex[:6]}"
    limiter = RateLimiter(per_minute=2)
    assert (await limiter.hit(redis, client, now=600.0))[0] == 1
    assert await limiter.hit(redis, client, now=630.0) == (2, 30)
    assert (await limiter.hit(redis, client, now=660.0))[0] == 1
    await redis.aclose()


async def test_redis_down_fails_open() -> None:
    app = _app(f"redis://127.0.0.1:{free_port()}/0", limit=1)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [(await client.get("/no-such-page")).status_code for _ in range(3)]
    assert codes == [404, 404, 404]
