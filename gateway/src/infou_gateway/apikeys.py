"""API keys for trusted server-side clients: `X-API-Key: ik_…`, each with its own quotas and
share of the daily LLM budget; created, listed and revoked with `infou keys`.

Stored in Redis, which the gateway needs anyway for its limits (it has no database): one hash
field per key under the key's sha256, so the store never holds a usable key (keys are 256
random bits: a plain hash cannot be reversed). Redis must not evict them: run it with
`maxmemory-policy noeviction` or a `volatile-*` policy (key records have no TTL; everything else
the gateway writes does). Lookups are reused for `INFOU_API_KEY_CACHE_SECONDS`, so a revocation
takes effect on every replica within that many seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

KEY_PREFIX = "ik_"
API_KEY_HEADER_NAME = "x-api-key"
RECORDS = "apikeys:v1"  # hash: sha256(key) -> record JSON
IDS = "apikeys:ids:v1"  # hash: key id -> sha256(key)
MAX_KEY_LENGTH = 100


class KeyStoreUnavailable(Exception):
    """The key could not be checked (Redis down, nothing cached): refuse, never let it pass."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: str
    # 0 means "the deployment's default" for each of these.
    budget_share: float = 0.0
    requests_per_minute: int = 0
    sessions_per_day: int = 0
    generations_per_day: int = 0


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeys:
    """Looks keys up in Redis, reusing answers for a few seconds."""

    def __init__(self, redis: Redis, cache_seconds: float) -> None:
        self.redis = redis
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def lookup(self, key: str) -> ApiKey | None:
        """The key's record; None for an unknown or revoked key."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_LENGTH:
            return None
        hashed = digest(key)
        now = time.monotonic()
        cached = self._cache.get(hashed)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            raw = await self.redis.hget(RECORDS, hashed)
        except Exception as exc:
            if cached is not None:  # stale but known: better than refusing a paying client
                return cached[1]
            log.warning("api_key_store_unavailable", error=str(exc))
            raise KeyStoreUnavailable from exc
        record = ApiKey(**json.loads(raw)) if raw else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[hashed] = (now, record)
        return record

    async def create(self, name: str, **quotas: float) -> tuple[str, ApiKey]:
        key = new_key()
        record = ApiKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **quotas,  # type: ignore[arg-type]
        )
        hashed = digest(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORDS, hashed, json.dumps(asdict(record)))
            pipe.hset(IDS, record.id, hashed)
            await pipe.execute()
        return key, record

    async def revoke(self, key_id: str) -> bool:
        hashed = await self.redis.hget(IDS, key_id)
        if not hashed:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(RECORDS, hashed)
            pipe.hdel(IDS, key_id)
            await pipe.execute()
        return True

    async def all(self) -> list[ApiKey]:
        records = await self.redis.hvals(RECORDS)
        return sorted((ApiKey(**json.loads(r)) for r in records), key=lambda k: k.created_at)


def command(argv: list[str]) -> int:
    """`python -m infou_gateway keys create|revoke|list` (`infou keys` in development).

    Works against the gateway's Redis (INFOU_REDIS_URL)."""
    parser = argparse.ArgumentParser(
        prog="python -m infou_gateway keys", description="API keys of the gateway"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("--name", required=True)
    create.add_argument("--budget-share", type=float, default=0.0, help="0-1 of the daily budget")
    create.add_argument("--requests-per-minute", type=int, default=0)
    create.add_argument("--sessions-per-day", type=int, default=0)
    create.add_argument("--generations-per-day", type=int, default=0)
    revoke = sub.add_parser("revoke", help="revoke a key by its id (key_…)")
    revoke.add_argument("key_id")
    sub.add_parser("list", help="the keys' ids, names and quotas (never the keys)")
    args = parser.parse_args(argv)
    if getattr(args, "budget_share", 0.0) and not 0 < args.budget_share <= 1:
        parser.error("--budget-share must be in (0, 1]")
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from infou_gateway.settings import GatewaySettings

    redis = Redis.from_url(GatewaySettings().redis_url)
    keys = ApiKeys(redis, cache_seconds=0)
    try:
        if args.action == "create":
            key, record = await keys.create(
                args.name,
                budget_share=args.budget_share,
                requests_per_minute=args.requests_per_minute,
                sessions_per_day=args.sessions_per_day,
                generations_per_day=args.generations_per_day,
            )
            print(json.dumps({"api_key": key, **asdict(record)}, ensure_ascii=False))
            return 0
        if args.action == "revoke":
            if await keys.revoke(args.key_id):
                print(f"revoked {args.key_id}")
                return 0
            print(f"no key {args.key_id}")
            return 1
        for record in await keys.all():
            print(json.dumps(asdict(record), ensure_ascii=False))
        return 0
    finally:
        await redis.aclose()
