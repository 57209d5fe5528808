"""Per-client fair shares: the request rate (ratelimit.py, decided in memory and shared through
Redis in batches) and the daily creations, counted in Redis with the `limits` library.

Every request and WebSocket handshake is one hit of the client's requests-a-minute limit
(PRD §5.4: 100); creations also count against the client's sessions or generations a day.
When Redis fails the counts move to this process's memory for a few seconds at a time
(degraded: logged, `infou_quota_degraded` set): the limits hold per replica, never fail open.

`ClientGate` is the pure-ASGI middleware that decides who the client is (identity.py), refuses
a missing or unknown API key, applies the request rate, and leaves the client in the request's
state for the routes (`CurrentClient`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

import grpc
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from redis.asyncio import Redis
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from infou_gateway.apikeys import API_KEY_HEADER_NAME, KeyStoreUnavailable
from infou_gateway.errors import error_response
from infou_gateway.idempotency import gave_up
from infou_gateway.identity import Client, anonymous_client, keyed_client, parse_networks
from infou_gateway.ratelimit import QUOTA_DEGRADED_CHECKS, RateVerdict, RequestRate, StoreHealth
from infou_gateway.settings import GatewaySettings
from infou_libs.errors import DomainError, RateLimited, Unauthenticated, Unavailable
from infou_libs.logging import get_logger

log = get_logger(__name__)

RATE_LIMITED = Counter(
    "infou_rate_limited_total", "Requests refused by a per-client limit", ["limit"]
)
# Probes, metrics and docs are never limited.
# Probes and documentation: no key, no rate (a kubelet probing /live must never be refused).
EXEMPT_PATHS = frozenset(
    {"/health", "/live", "/ready", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)


class Quotas:
    """Moving-window limits in Redis, with per-process memory as the fallback."""

    def __init__(self, redis: Redis, rate_sync_seconds: float = 0.2) -> None:
        self.store = StoreHealth()
        # Every request is one hit of this: decided in memory, shared in batches (ratelimit.py).
        self.requests = RequestRate(redis, rate_sync_seconds, self.store)
        # The gateway's one Redis connection pool (its timeouts too) serves the limits.
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # passed through
        )
        self._redis = MovingWindowRateLimiter(storage)
        self._memory = MovingWindowRateLimiter(MemoryStorage())

    @property
    def degraded(self) -> bool:
        return self.store.degraded

    async def close(self) -> None:
        await self.requests.close()

    async def _use(self, check: Callable[[MovingWindowRateLimiter], Awaitable[Any]]) -> Any:
        if not self.degraded:
            try:
                result = await check(self._redis)
            except Exception as exc:
                self.store.failed(exc)
            else:
                self.store.recovered()
                return result
        QUOTA_DEGRADED_CHECKS.inc()
        return await check(self._memory)

    async def hit(self, item: RateLimitItem, *ids: str) -> bool:
        """Counts one use; False when the window is full (the refused use is not counted)."""
        allowed: bool = await self._use(lambda limiter: limiter.hit(item, *ids))
        return allowed

    async def refusal_if_full(self, item: RateLimitItem, *ids: str) -> RateVerdict | None:
        """None while one more use would fit (nothing counted); else the refusal's verdict.

        The window's statistics (for Retry-After) are read only for a refusal: one Redis round
        trip per allowed check instead of two.
        """

        async def check(limiter: MovingWindowRateLimiter) -> RateVerdict | None:
            if await limiter.test(item, *ids):
                return None
            stats = await limiter.get_window_stats(item, *ids)
            reset = max(1, math.ceil(stats.reset_time - time.time()))
            return RateVerdict(False, item.amount, max(0, stats.remaining), reset)

        verdict: RateVerdict | None = await self._use(check)
        return verdict


def per_minute(amount: int) -> RateLimitItem:
    return RateLimitItemPerMinute(amount)


def per_day(amount: int) -> RateLimitItem:
    return RateLimitItemPerDay(amount)


def refusal(verdict: RateVerdict, code: str, message: str) -> RateLimited:
    return RateLimited(message, code=code, retry_after=verdict.reset_after)


async def deny(scope: Scope, receive: Receive, send: Send, response: JSONResponse) -> None:
    """Answers an HTTP request, or refuses a WebSocket handshake with the same status (close
    code 4000+status where the server cannot send an HTTP response to a handshake)."""
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + response.status_code)


@dataclass(frozen=True, slots=True)
class Admitted:
    client: Client
    verdict: RateVerdict | None  # None: not rate limited (an exempt path, or no limit set)


@dataclass(frozen=True, slots=True)
class Refused:
    error: DomainError
    headers: dict[str, str] | None = None
    rate_limited: Client | None = None  # the client, when its request rate was the reason


# Clients remembered by (peer, X-Forwarded-For): the address parsing is not redone per request.
MAX_REMEMBERED_CLIENTS = 10_000


class ClientGate:
    """Identity, API keys and the per-client request rate for every HTTP request and
    WebSocket handshake (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings
        self.proxies = parse_networks(settings.trusted_proxies)
        self._clients: dict[tuple[str, str], Client] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        outcome = await self.admit(scope)
        if isinstance(outcome, Refused):
            limited = outcome.rate_limited
            if limited is not None:
                RATE_LIMITED.labels("requests_per_minute").inc()
                log.warning("rate_limited", endpoint=scope["path"], client=limited.hashed_id)
            await deny(scope, receive, send, error_response(outcome.error, outcome.headers))
            return
        scope.setdefault("state", {})["client"] = outcome.client
        verdict = outcome.verdict
        if verdict is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(verdict.headers())
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)

    def _anonymous(self, scope: Scope, headers: Headers) -> Client:
        peer = scope.get("client")
        address = peer[0] if peer else ""
        # Without trusted proxies X-Forwarded-For is never read: the peer alone decides.
        forwarded = headers.get("x-forwarded-for", "") if self.proxies else ""
        client = self._clients.get((address, forwarded))
        if client is None:
            if len(self._clients) >= MAX_REMEMBERED_CLIENTS:
                self._clients.clear()
            client = anonymous_client(address, headers, self.proxies)
            self._clients[(address, forwarded)] = client
        return client

    async def admit(self, scope: Scope) -> Admitted | Refused:
        """Who the client is and whether it may go on; an admitted request is counted against
        its rate (a refused one is not, and nothing is logged: the caller says why)."""
        state = scope["app"].state.gateway
        headers = Headers(scope=scope)
        client = self._anonymous(scope, headers)
        exempt = scope["path"] in EXEMPT_PATHS
        key = headers.get(API_KEY_HEADER_NAME)
        if key:
            try:
                record = await state.api_keys.lookup(key)
            except KeyStoreUnavailable:
                return Refused(Unavailable("API keys cannot be checked just now", retry_after=5))
            if record is None:
                return Refused(
                    Unauthenticated(
                        "unknown or revoked API key", field="X-API-Key", code="INVALID_API_KEY"
                    )
                )
            client = keyed_client(client, record)
        elif self.settings.require_api_key and not exempt:
            return Refused(
                Unauthenticated(
                    "this deployment needs an X-API-Key",
                    field="X-API-Key",
                    code="API_KEY_REQUIRED",
                )
            )
        if exempt or self.settings.rate_limit_per_minute <= 0:
            return Admitted(client, None)
        rate = client.quota(self.settings.rate_limit_per_minute, "requests_per_minute")
        verdict = await state.quotas.requests.hit(client.id, rate)
        if verdict.allowed:
            return Admitted(client, verdict)
        message = (
            f"요청 한도({rate}회/분)를 초과했습니다. {verdict.reset_after}초 후 다시 시도하세요."
        )
        limited = refusal(verdict, "RATE_LIMITED", message)
        return Refused(limited, verdict.headers(), rate_limited=client)


async def current_client(request: Request) -> Client:  # async: no thread-pool hop
    client: Client = request.state.client
    return client


CurrentClient = Annotated[Client, Depends(current_client)]


async def check_creation_room(state: Any, client: Client, kind: str) -> None:
    """A 429 when the client made its day's worth of sessions or generations."""
    settings: GatewaySettings = state.settings
    default = {
        "sessions": settings.sessions_per_client_per_day,
        "generations": settings.generations_per_client_per_day,
    }[kind]
    amount = client.quota(default, f"{kind}_per_day")
    if amount <= 0:
        return
    verdict = await state.quotas.refusal_if_full(per_day(amount), kind, client.id)
    if verdict is None:
        return
    RATE_LIMITED.labels(f"{kind}_per_day").inc()
    log.warning("daily_quota_reached", kind=kind, client=client.hashed_id)
    raise refusal(
        verdict,
        "DAILY_QUOTA_EXCEEDED",
        f"하루 생성 한도({amount}회)를 모두 사용했습니다. "
        f"{verdict.reset_after}초 후 다시 시도하세요.",
    )


class _Created(Protocol):
    replayed: bool


C = TypeVar("C", bound=_Created)


async def create_within_quota(
    state: Any, client: Client, kind: str, create: Callable[[], Awaitable[C]]
) -> C:
    """A create (POST /sessions, POST /sub-topics/generate) in the client's daily quota: refused
    (429) once the day's worth is used; one whose deadline passed is a 503 to retry with the same
    Idempotency-Key; a replay counts nothing."""
    await check_creation_room(state, client, kind)
    try:
        reply = await create()
    except grpc.aio.AioRpcError as exc:
        timed_out = gave_up(exc)
        if timed_out is None:
            raise
        raise timed_out from exc
    if not reply.replayed:
        await count_creation(state, client, kind)
    return reply


async def count_creation(state: Any, client: Client, kind: str) -> None:
    """Counts one creation that really happened (a replay creates nothing)."""
    settings: GatewaySettings = state.settings
    default = {
        "sessions": settings.sessions_per_client_per_day,
        "generations": settings.generations_per_client_per_day,
    }[kind]
    amount = client.quota(default, f"{kind}_per_day")
    if amount > 0:
        await state.quotas.hit(per_day(amount), kind, client.id)
