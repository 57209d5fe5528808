"""Response cache in Redis (PRD §5.2 keys); fails open: Redis down never fails a request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

CACHE_REQUESTS = Counter("infou_cache_requests_total", "Gateway cache lookups", ["area", "result"])
CACHE_ERRORS = Counter("infou_cache_errors_total", "Cache operations that failed", ["operation"])

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


class ResponseCache:
    def __init__(self, redis: Redis, enabled: bool = True) -> None:
        self.redis = redis
        self.enabled = enabled

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
        if not self.enabled:
            return await load()
        try:
            raw = await (self.redis.hget(key, field) if field else self.redis.get(key))
        except Exception as exc:
            CACHE_ERRORS.labels("get").inc()
            log.warning("cache_unavailable", operation="get", key=key, error=str(exc))
            return await load()
        if raw is not None:
            CACHE_REQUESTS.labels(area, "hit").inc()
            return json.loads(raw)
        CACHE_REQUESTS.labels(area, "miss").inc()
        value = await load()
        if store_if is not None and not store_if(value):
            return value
        try:
            data = json.dumps(value, ensure_ascii=False)
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
        return value

    async def invalidate(self, *keys: str, patterns: tuple[str, ...] = ()) -> int:
        """Deletes keys (and keys matching patterns); returns how many went."""
        try:
            found = list(keys)
            for pattern in patterns:
                found += [k async for k in self.redis.scan_iter(match=pattern, count=500)]
            return int(await self.redis.delete(*found)) if found else 0
        except Exception as exc:
            CACHE_ERRORS.labels("invalidate").inc()
            log.error("cache_invalidation_failed", keys=list(keys), error=str(exc))
            return 0

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False
