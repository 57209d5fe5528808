"""Per-client limits (PRD §5.4 and the launch rules): who the client is, requests a minute,
API keys, and limits that keep holding when Redis is down."""

import uuid
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from redis.asyncio import Redis

from infou_devtools.engines import free_port
from infou_gateway.apikeys import ApiKeys
from infou_gateway.app import create_app
from infou_gateway.identity import client_address, group, parse_networks
from infou_gateway.settings import GatewaySettings


def _app(redis_url: str, limit: int, **extra: Any) -> FastAPI:
    closed = free_port()
    addrs: dict[str, Any] = {
        f"{s}_addr": f"127.0.0.1:{closed}"
        for s in ("catalog", "session", "generation", "feedback", "realtime")
    }
    return create_app(
        GatewaySettings(
            redis_url=redis_url,
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x",
            nats_url=f"nats://127.0.0.1:{closed}",
            rate_limit_per_minute=limit,
            health_timeout_seconds=0.2,
            **addrs,
            **extra,
        )
    )


def _fresh_ip() -> str:
    return f"203.0.113.{uuid.uuid4().int % 250 + 1}"


async def _codes(
    app: FastAPI, peer: str, count: int, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [await client.get("/no-such-page", headers=headers or {}) for _ in range(count)]


async def test_requests_over_the_limit_get_429_with_retry_after(redis_url: str) -> None:
    me = f"2001:db8:{uuid.uuid4().hex[:4]}::1"
    neighbour = f"2001:db8:{uuid.uuid4().hex[:4]}::1"
    app = _app(redis_url, limit=3)
    async with app.router.lifespan_context(app):
        replies = await _codes(app, me, 4)
        transport = httpx.ASGITransport(app=app, client=(me, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/health")
        someone_else = await _codes(app, neighbour, 1)
        # Another address in the same IPv6 /64 is the same client.
        same_block = await _codes(app, me.replace("::1", "::beef"), 1)
    assert [r.status_code for r in replies] == [404, 404, 404, 429]
    assert replies[0].headers["X-RateLimit-Remaining"] == "2"
    refused = replies[3]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert health.status_code != 429  # probes are never limited
    assert someone_else[0].status_code == 404  # the limit is per client
    assert same_block[0].status_code == 429


async def test_rotating_x_forwarded_for_from_loopback_is_one_client(redis_url: str) -> None:
    # No trusted proxies (the default): the forwarded header is the client's own words.
    app = _app(redis_url, limit=3)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [
                (
                    await client.get("/no-such-page", headers={"X-Forwarded-For": _fresh_ip()})
                ).status_code
                for _ in range(6)
            ]
    assert codes.count(429) >= 3


async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    redis_url: str,
) -> None:
    app = _app(redis_url, limit=2, trusted_proxies=["10.0.0.0/8"])
    real = _fresh_ip()
    async with app.router.lifespan_context(app):
        # The client forges left-hand hops; the proxy appends what it saw.
        forged = [
            await _codes(app, "10.1.2.3", 1, {"X-Forwarded-For": f"{_fresh_ip()}, {real}"})
            for _ in range(3)
        ]
        other = await _codes(app, "10.1.2.3", 1, {"X-Forwarded-For": _fresh_ip()})
    assert [r[0].status_code for r in forged] == [404, 404, 429]
    assert other[0].status_code == 404


def test_client_address_rules() -> None:
    proxies = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])
    assert client_address("198.51.100.7", "1.2.3.4", proxies) == "198.51.100.7"
    assert client_address("10.0.0.1", "1.2.3.4, 198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("10.0.0.1", "198.51.100.7, 10.9.9.9", proxies) == "198.51.100.7"
    assert client_address("10.0.0.1", "", proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", "garbage, 10.2.2.2", proxies) == "10.2.2.2"
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"
    assert group("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert group("198.51.100.7") == "198.51.100.7"


async def test_redis_down_still_limits_in_memory() -> None:
    app = _app(f"redis://127.0.0.1:{free_port()}/0", limit=2)
    async with app.router.lifespan_context(app):
        replies = await _codes(app, _fresh_ip(), 4)
        others = await _codes(app, "198.51.100.1", 1)
        # The metrics port serves the process's registry; read it in-process.
        text = generate_latest().decode()
    assert [r.status_code for r in replies] == [404, 404, 429, 429]
    assert others[0].status_code == 404  # another client has its own share
    assert "infou_quota_degraded 1.0" in text


async def test_api_keys_have_their_own_limits_and_revocation_bites(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    keys = ApiKeys(redis, cache_seconds=0)
    key, record = await keys.create("partner", requests_per_minute=5)
    app = _app(redis_url, limit=1, require_api_key=True, api_key_cache_seconds=0)
    try:
        async with app.router.lifespan_context(app):
            anonymous = await _codes(app, _fresh_ip(), 1)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                # The kubelet has no key: the probes are never refused (nor rate-limited).
                probes = [(await client.get(path)).status_code for path in ("/live",) * 3]
            unknown = await _codes(app, _fresh_ip(), 1, {"X-API-Key": "ik_" + "x" * 40})
            # The key's own rate (5) applies, from any address.
            keyed = [(await _codes(app, _fresh_ip(), 1, {"X-API-Key": key}))[0] for _ in range(6)]
            assert await keys.revoke(record.id)
            revoked = await _codes(app, _fresh_ip(), 1, {"X-API-Key": key})
    finally:
        await keys.revoke(record.id)
        await redis.aclose()
    assert anonymous[0].status_code == 401
    assert probes == [200, 200, 200]
    assert anonymous[0].json()["error"] == {
        "code": "API_KEY_REQUIRED",
        "message": "this deployment needs an X-API-Key",
        "field": "X-API-Key",
    }
    assert unknown[0].status_code == 401
    assert [r.status_code for r in keyed] == [404] * 5 + [429]
    assert revoked[0].status_code == 401
    # Only the key's hash is stored.
    raw = cast(dict[bytes, bytes], await Redis.from_url(redis_url).hgetall("apikeys:v1"))
    assert key.encode() not in b"".join([*raw.keys(), *raw.values()])


@pytest.mark.parametrize("bad", ["", " padded ", "x" * 256, "tab\there"])
async def test_a_malformed_idempotency_key_is_a_422_naming_the_header(
    redis_url: str, bad: str
) -> None:
    app = _app(redis_url, limit=0)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            reply = await client.post(
                "/sessions",
                json={"main_topic_id": 1, "sub_topic_ids": ["curated_1"], "level": "beginner"},
                headers={"Idempotency-Key": bad},
            )
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "Idempotency-Key"


async def test_replicas_share_a_clients_minute_through_redis(redis_url: str) -> None:
    """Two gateways on one Redis: what one admitted counts on the other once it synced."""
    peer = _fresh_ip()
    first, second = _app(redis_url, limit=3), _app(redis_url, limit=3)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        on_first = await _codes(first, peer, 2)
        await first.state.gateway.quotas.requests.sync()  # what the flusher does every interval
        on_second = await _codes(second, peer, 2)
        await second.state.gateway.quotas.requests.sync()
        # No new hits on the first: a client active there is still refreshed by its sync.
        await first.state.gateway.quotas.requests.sync()
        back_on_first = await _codes(first, peer, 1)
    assert [r.status_code for r in on_first] == [404, 404]
    assert [r.status_code for r in on_second] == [404, 429]
    assert on_second[0].headers["X-RateLimit-Remaining"] == "0"
    assert back_on_first[0].status_code == 429
