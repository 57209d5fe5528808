"""Concurrent WebSockets per session token (INFOU_WS_MAX_PER_SESSION) and per client
(INFOU_WS_MAX_PER_CLIENT), across every gateway replica.

Each open connection is a member of a Redis sorted set per token and per client, scored by
when its lease ends; one loop per replica renews the leases of all its live connections in
pipelined batches (no task per connection), so a replica that died frees its slots once their
leases lapse. When Redis fails, the slots are counted in this process only
(degraded, like the request limits): never unlimited.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict

from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

LEASE_SECONDS = 90.0
# Renew well before the lease ends.
RENEW_SECONDS = 30.0
# Leases renewed in one pipeline.
RENEW_BATCH = 1000

# Adds the member when every set has room; returns 1 when it did (atomic across the sets).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local lease_end = tonumber(ARGV[2])
local member = ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, lease_end, member)
  redis.call('EXPIRE', key, math.ceil(lease_end - now) + 60)
end
return 1
"""


def token_key(token: str) -> str:
    return "ws:token:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def client_key(client_id: str) -> str:
    return "ws:client:" + hashlib.sha256(client_id.encode()).hexdigest()[:32]


class ConnectionSlots:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._local: dict[str, dict[str, float]] = defaultdict(dict)
        # member → its keys, for every connection of this replica holding slots
        self._held: dict[str, list[str]] = {}

    async def acquire(self, member: str, limits: dict[str, int]) -> bool:
        """Takes a slot in every set (key → its maximum), or none of them."""
        now = time.time()
        try:
            taken = bool(
                await self._acquire(
                    keys=list(limits),
                    args=[now, now + LEASE_SECONDS, member, *limits.values()],
                )
            )
        except Exception as exc:
            log.error("ws_slots_unavailable", error=str(exc) or type(exc).__name__)
            taken = self._acquire_locally(member, limits, now)
        if taken:
            self._held[member] = list(limits)
        return taken

    def _acquire_locally(self, member: str, limits: dict[str, int], now: float) -> bool:
        for key, maximum in limits.items():
            live = {m: end for m, end in self._local[key].items() if end > now}
            self._local[key] = live
            if len(live) >= maximum:
                return False
        for key in limits:
            self._local[key][member] = now + LEASE_SECONDS
        return True

    async def keep_renewed(self) -> None:
        """Renews every held lease, every RENEW_SECONDS, while the replica runs."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await self.renew_all()

    async def renew_all(self) -> None:
        lease_end = time.time() + LEASE_SECONDS
        held = list(self._held.items())
        for member, keys in held:
            for key in keys:
                if member in self._local.get(key, {}):
                    self._local[key][member] = lease_end
        for start in range(0, len(held), RENEW_BATCH):
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for member, keys in held[start : start + RENEW_BATCH]:
                        for key in keys:
                            pipe.zadd(key, {member: lease_end}, xx=True)
                    await pipe.execute()
            except Exception as exc:
                log.warning("ws_slots_renew_failed", error=str(exc) or type(exc).__name__)

    async def release(self, member: str, keys: list[str]) -> None:
        self._held.pop(member, None)
        for key in keys:
            self._local.get(key, {}).pop(member, None)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, member)
                await pipe.execute()
        except Exception as exc:
            log.warning("ws_slots_release_failed", error=str(exc) or type(exc).__name__)
