"""Token-checked reads (a session, its curriculum, an article) from the PRD §5.2 cache keys.

An entry holds a hash of the token that opened it, never the token, and the body encrypted
(AES-256-GCM) under a key derived from that token: Redis holds nothing readable without it, and
the gateway needs no keyring. A request whose token hashes to the entry's check (compared in
constant time) gets the stored bytes; any other token goes to session-service, which alone
decides 401, 404 or 410, and is never cached. Each process also keeps the bodies it served in
memory (bounded by `INFOU_SESSION_CACHE_MAX_ENTRIES`), so a hit costs no network call, and
memory_reads.py answers the same request again before routing, with the same token check.

Every replica subscribes to the sessions' progress (core NATS `progress.session.*`): a message
drops every entry of that session here and in Redis, and a load that was in flight when it came
is not stored. What no message announces (the learner's progress from feedback, a message lost
while NATS was away) shows within `INFOU_SESSION_CACHE_SECONDS`; a ready article keeps its body
for `INFOU_ARTICLE_CACHE_SECONDS` (never past the session's expiry), since only a conversion,
which is announced, changes it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from infou_gateway.cache import (
    CACHE_ERRORS,
    CACHE_REQUESTS,
    MAX_TARGETS,
    Target,
    TargetIndex,
    count_hit,
)
from infou_libs.logging import get_logger

log = get_logger(__name__)

_CHECK = 32
_NONCE = 12


def session_key(session_id: str) -> str:
    return f"sess:{session_id}:status:v1"


def curriculum_key(session_id: str) -> str:
    """The session's curriculum (beyond PRD §5.2, which keys only the status)."""
    return f"sess:{session_id}:curriculum:v1"


def article_key(article_id: str, level: str) -> str:
    return f"art:{article_id}:{level or 'default'}:v1"


def _index_key(session_id: str) -> str:
    """The set of a session's entries, so one progress message drops them all."""
    return f"sess:{session_id}:keys:v1"


def token_check(token: str) -> bytes:
    return hashlib.sha256(b"infou-cache-check\0" + token.encode()).digest()


def _token_key(token: str) -> bytes:
    return hashlib.sha256(b"infou-cache-key\0" + token.encode()).digest()


@dataclass(frozen=True)
class Loaded:
    """A read as session-service answered it; `ttl` > 0 makes it worth keeping that long."""

    status: int
    body: bytes
    ttl: float = 0.0


class SessionReads:
    def __init__(self, redis: Redis, *, enabled: bool, max_entries: int) -> None:
        self.redis = redis
        self.enabled = enabled
        self.max_entries = max_entries
        # key → (monotonic expiry, token check, body, session id); the oldest goes first.
        self._local: dict[str, tuple[float, bytes, bytes, str]] = {}
        self._keys_of: dict[str, set[str]] = {}
        # Progress messages seen per session (and resets of that map): a load keeps its
        # result only if neither moved while it ran.
        self._epoch: dict[str, int] = {}
        self._resets = 0
        # A request served from memory → (key, route, area, session id), for `held`.
        self._targets: TargetIndex[tuple[str, str, str, str]] = TargetIndex(
            min(MAX_TARGETS, 2 * max_entries)
        )

    def _moment(self, session_id: str) -> tuple[int, int]:
        return self._resets, self._epoch.get(session_id, 0)

    async def served(
        self,
        area: str,
        key: str,
        session_id: str,
        token: str,
        load: Callable[[], Awaitable[Loaded]],
        target: Target | None = None,
    ) -> Loaded:
        """The stored body when `token` opened it, else `load()` (kept when it says so). With
        `target`, a read kept in memory is remembered for `held`."""
        if not self.enabled or not token:
            return await load()
        read = await self._served(area, key, session_id, token, load)
        if target is not None and read.status == 200 and key in self._local:
            # The access log names the session only where the route was asked with its id.
            logged = session_id if "{session_id}" in target.route else ""
            self._targets.put(target, (key, target.route, area, logged))
        return read

    async def _served(
        self,
        area: str,
        key: str,
        session_id: str,
        token: str,
        load: Callable[[], Awaitable[Loaded]],
    ) -> Loaded:
        check = token_check(token)
        found = self._local.get(key)
        if (
            found is not None
            and found[0] > time.monotonic()
            and hmac.compare_digest(found[1], check)
        ):
            count_hit(area)
            return Loaded(200, found[2])
        epoch = self._moment(session_id)
        stored = await self._from_redis(key, token, check)
        if stored is not None:
            body, ttl = stored
            count_hit(area)
            if self._moment(session_id) == epoch:
                self._keep(key, session_id, check, body, ttl)
            return Loaded(200, body)
        CACHE_REQUESTS.labels(area, "miss").inc()
        loaded = await load()
        # Not kept if a progress message came while it loaded: it may predate the change.
        if loaded.status == 200 and loaded.ttl >= 1 and self._moment(session_id) == epoch:
            self._keep(key, session_id, check, loaded.body, loaded.ttl)
            await self._to_redis(key, session_id, token, check, loaded)
        return loaded

    def held(self, path: str, query: bytes, token: str) -> tuple[str, str, str, bytes] | None:
        """(route, area, session id for the log, body) for a request `served` from memory
        before, while the body is there and only for the token that opened it (the caller
        counts the hit once it serves it)."""
        remembered = self._targets.get(path, query)
        if remembered is None or not token or not self.enabled:
            return None
        key, route, area, session_id = remembered
        found = self._local.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        if not hmac.compare_digest(found[1], token_check(token)):
            return None
        return route, area, session_id, found[2]

    def _keep(self, key: str, session_id: str, check: bytes, body: bytes, ttl: float) -> None:
        self._local.pop(key, None)
        while self._local and len(self._local) >= self.max_entries:
            oldest = next(iter(self._local))
            owner = self._local.pop(oldest)[3]
            self._keys_of.get(owner, set()).discard(oldest)
            if not self._keys_of.get(owner, True):
                del self._keys_of[owner]
        self._local[key] = (time.monotonic() + ttl, check, body, session_id)
        self._keys_of.setdefault(session_id, set()).add(key)

    async def _from_redis(self, key: str, token: str, check: bytes) -> tuple[bytes, float] | None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                raw, pttl = await pipe.execute()
        except Exception as exc:
            CACHE_ERRORS.labels("get").inc()
            log.warning("cache_unavailable", operation="get", error=str(exc))
            return None
        if not raw or len(raw) <= _CHECK + _NONCE or pttl is None or pttl <= 0:
            return None
        if not hmac.compare_digest(raw[:_CHECK], check):
            return None
        nonce, sealed = raw[_CHECK : _CHECK + _NONCE], raw[_CHECK + _NONCE :]
        try:
            body = AESGCM(_token_key(token)).decrypt(nonce, sealed, key.encode())
        except Exception:
            return None
        return body, pttl / 1000

    async def _to_redis(
        self, key: str, session_id: str, token: str, check: bytes, loaded: Loaded
    ) -> None:
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(_token_key(token)).encrypt(nonce, loaded.body, key.encode())
        ttl = int(loaded.ttl)
        index = _index_key(session_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, check + nonce + sealed, ex=ttl)
                pipe.sadd(index, key)
                pipe.expire(index, ttl, gt=True)
                pipe.expire(index, ttl, nx=True)
                await pipe.execute()
        except Exception as exc:
            CACHE_ERRORS.labels("set").inc()
            log.warning("cache_unavailable", operation="set", error=str(exc))

    async def invalidate(self, session_id: str) -> None:
        """Drops every entry of the session, here and in Redis (a progress message came)."""
        self._forget(session_id)
        if not self.enabled:
            return
        index = _index_key(session_id)
        try:
            keys = [
                k.decode() if isinstance(k, bytes) else str(k)
                for k in await self.redis.smembers(index)
            ]
            await self.redis.delete(
                index, session_key(session_id), curriculum_key(session_id), *keys
            )
        except Exception as exc:
            CACHE_ERRORS.labels("invalidate").inc()
            log.error("cache_invalidation_failed", session_id=session_id, error=str(exc))
        finally:
            # A read that found the old entry in Redis before it went keeps nothing here.
            self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        self._epoch[session_id] = self._epoch.get(session_id, 0) + 1
        for key in self._keys_of.pop(session_id, set()):
            self._local.pop(key, None)
        if len(self._epoch) > 4 * self.max_entries:
            # Epochs only matter while a load is in flight: old ones can go.
            self._epoch = {}
            self._resets += 1
