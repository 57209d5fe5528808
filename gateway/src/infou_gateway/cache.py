"""Response cache in Redis (PRD §5.2 keys); fails open: Redis down never fails a request.

In front of Redis, each process keeps the encoded bodies it served for a few seconds
(`INFOU_LOCAL_CACHE_SECONDS`): a hit is the stored bytes, sent as they are. A CatalogChanged event
drops the entries at once on the replica that consumes it; every other replica serves its copy at
most that long after (the bounded staleness). Concurrent misses of one entry wait for one load.

Each body served from memory is also found by the request that asked for it (`Target`: its path
and raw query string), so memory_reads.py can answer the same request again before routing; what
drops the entry (expiry, an invalidation) makes that layer miss too.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis
from starlette.requests import Request

from infou_libs.logging import get_logger

log = get_logger(__name__)

CACHE_REQUESTS = Counter("infou_cache_requests_total", "Gateway cache lookups", ["area", "result"])
CACHE_ERRORS = Counter("infou_cache_errors_total", "Cache operations that failed", ["operation"])

_HITS: dict[str, Any] = {}  # area → its hit counter (`labels()` takes a lock and builds a key)


def count_hit(area: str) -> None:
    counter = _HITS.get(area)
    if counter is None:
        counter = _HITS[area] = CACHE_REQUESTS.labels(area, "hit")
    counter.inc()


LEVELS_KEY = "lv:all:v1"
LEVELS_TTL = 3600
MAIN_TOPICS_KEY = "mt:all:v1"  # a hash: one field per query variant (category, page, ...)
MAIN_TOPICS_TTL = 3600
MAIN_TOPIC_TTL = 3600
CURATED_TTL = 1800


def main_topic_key(slug: str) -> str:
    """One topic's detail (beyond PRD §5.2, which keys only the list)."""
    return f"mt:s:{slug}:v1"


def curated_key(main_id: int, level: str | None) -> str:
    return f"st:c:{main_id}:{level or 'all'}:v1"


def curated_pattern(main_id: int) -> str:
    """Every level's curated list of one topic."""
    return f"st:c:{main_id}:*:v1"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a response was asked for: the path and raw query string (how memory_reads.py
    finds the same request again), and the route template (its metric and log name)."""

    path: str
    query: bytes
    route: str

    @classmethod
    def of(cls, request: Request) -> Target:
        scope = request.scope
        return cls(scope["path"], scope["query_string"], scope["route"].path)


V = TypeVar("V")


class TargetIndex(Generic[V]):
    """(path, raw query) → what a request there was last served from; bounded (oldest first
    out), since clients choose the query strings."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bytes], V] = {}

    def put(self, target: Target, value: V) -> None:
        key = (target.path, target.query)
        self._entries.pop(key, None)
        while self._entries and len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = value

    def get(self, path: str, query: bytes) -> V | None:
        return self._entries.get((path, query))


# Target index size per cache: room for every variant a real client asks for.
MAX_TARGETS = 10_000


def encode(value: Any) -> bytes:
    """A response body as stored and served (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class ResponseCache:
    def __init__(self, redis: Redis, enabled: bool = True, local_seconds: float = 0.0) -> None:
        self.redis = redis
        self.enabled = enabled
        self.local_seconds = local_seconds
        # (key, variant) → (monotonic expiry, body); the key is the Redis key it derives from.
        self._local: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[bytes]] = {}
        # A request served from memory → (slot, route, area): memory_reads.py answers it again.
        self._targets: TargetIndex[tuple[tuple[str, str], str, str]] = TargetIndex(MAX_TARGETS)

    async def served(
        self,
        area: str,
        key: str,
        variant: str,
        ttl: int,
        produce: Callable[[], Awaitable[bytes]],
        target: Target | None = None,
    ) -> bytes:
        """The body of one response variant from this process's memory, or `produce()`d once.

        Concurrent callers of a missing entry share one `produce()` (no stampede on Redis or
        catalog-service); a failure reaches each of them and stores nothing. With `target`, the
        request is remembered for `held` while the body stays in memory.
        """
        if not self.enabled or self.local_seconds <= 0:
            return await produce()
        slot = (key, variant)
        now = time.monotonic()
        found = self._local.get(slot)
        if found is not None and found[0] > now:
            count_hit(area)
            body = found[1]
        else:
            loading = self._loading.get(slot)
            if loading is None:
                # Its own task: a caller that goes away (client disconnect) cancels no one's load.
                loading = asyncio.ensure_future(self._produce(slot, ttl, produce))
                loading.add_done_callback(lambda t: t.cancelled() or t.exception())
                self._loading[slot] = loading
            body = await asyncio.shield(loading)
        if target is not None and slot in self._local:
            self._targets.put(target, (slot, target.route, area))
        return body

    def held(self, path: str, query: bytes) -> tuple[str, str, bytes] | None:
        """(route, area, body) for a request `served` from memory before, while the body is
        there (the caller counts the hit once it serves it)."""
        remembered = self._targets.get(path, query)
        if remembered is None:
            return None
        slot, route, area = remembered
        found = self._local.get(slot)
        if found is None or found[0] <= time.monotonic():
            return None
        return route, area, found[1]

    async def _produce(
        self, slot: tuple[str, str], ttl: int, produce: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        this = asyncio.current_task()
        try:
            body = await produce()
            # Kept only if no invalidation ran meanwhile (it forgets the loading slot).
            if self._loading.get(slot) is this:
                self._local[slot] = (time.monotonic() + min(self.local_seconds, ttl), body)
            return body
        finally:
            if self._loading.get(slot) is this:
                del self._loading[slot]

    def _forget_local(self, keys: tuple[str, ...], patterns: tuple[str, ...]) -> None:
        def matches(key: str) -> bool:
            return key in keys or any(fnmatch.fnmatchcase(key, p) for p in patterns)

        for slot in [s for s in self._local if matches(s[0])]:
            del self._local[slot]
        for slot in [s for s in self._loading if matches(s[0])]:
            del self._loading[slot]

    async def get_or_load_encoded(
        self,
        area: str,
        key: str,
        ttl: int,
        load: Callable[[], Awaitable[Any]],
        field: str | None = None,
        store_if: Callable[[Any], bool] | None = None,
    ) -> bytes:
        """The encoded body (see `get_or_load`): a Redis hit is returned as stored."""
        if not self.enabled:
            return encode(await load())
        try:
            raw = await (self.redis.hget(key, field) if field else self.redis.get(key))
        except Exception as exc:
            CACHE_ERRORS.labels("get").inc()
            log.warning("cache_unavailable", operation="get", key=key, error=str(exc))
            return encode(await load())
        if raw is not None:
            count_hit(area)
            return raw if isinstance(raw, bytes) else str(raw).encode()
        CACHE_REQUESTS.labels(area, "miss").inc()
        value = await load()
        data = encode(value)
        if store_if is not None and not store_if(value):
            return data
        await self._store(key, ttl, data, field)
        return data

    async def _store(self, key: str, ttl: int, data: bytes, field: str | None) -> None:
        try:
            if field:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(key, field, data)
                    pipe.expire(key, ttl, nx=True)
                    await pipe.execute()
            else:
                await self.redis.set(key, data, ex=ttl)
        except Exception as exc:
            CACHE_ERRORS.labels("set").inc()
            log.warning("cache_unavailable", operation="set", key=key, error=str(exc))

    async def get_or_load(
        self,
        area: str,
        key: str,
        ttl: int,
        load: Callable[[], Awaitable[Any]],
        field: str | None = None,
        store_if: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The cached JSON value, or `load()` stored for `ttl` seconds.

        With `field`, the key is a hash and each field a variant (e.g. a page of a list), so one
        DEL invalidates every variant. `store_if` keeps values not worth a slot (an empty page
        far past the end) out of the cache.
        """
        return json.loads(
            await self.get_or_load_encoded(area, key, ttl, load, field=field, store_if=store_if)
        )

    async def invalidate(self, *keys: str, patterns: tuple[str, ...] = ()) -> int:
        """Deletes keys (and keys matching patterns) here and in Redis; returns how many went."""
        self._forget_local(keys, patterns)
        try:
            found = list(keys)
            for pattern in patterns:
                found += [k async for k in self.redis.scan_iter(match=pattern, count=500)]
            return int(await self.redis.delete(*found)) if found else 0
        except Exception as exc:
            CACHE_ERRORS.labels("invalidate").inc()
            log.error("cache_invalidation_failed", keys=list(keys), error=str(exc))
            return 0
        finally:
            # A load that read the old value from Redis before it went keeps nothing here.
            self._forget_local(keys, patterns)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False
