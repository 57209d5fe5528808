"""The per-client request rate, decided in process memory and shared through Redis in batches.

Each replica counts a client's requests in one-second buckets over a moving minute: the totals
every replica had reported at the last sync, plus this replica's hits since. A decision is a
dictionary lookup, no network call. A background task sends the new hits of every client
(one pipelined call, a Lua script per client that adds them and returns the minute's totals)
every `INFOU_RATE_LIMIT_SYNC_SECONDS`, and brings back the totals of every client active here in
the last max(2 s, 3 intervals) even without new hits; a client new to this replica, or idle here
longer, is refreshed (one round trip) before its request is decided, so a replica never decides
on an old view.

Exactness: within one replica the limit is exact. Across replicas a client can get past it by
what it sends to the other replicas within one sync interval (plus that call's round trip):
each replica admits until its own view is full, so the worst case is replicas × limit in one
interval, and in practice (requests spread over time) a handful at 100/minute.

When Redis fails, the counts stay in memory (degraded: `infou_quota_degraded` 1, logged, Redis
tried again after `DEGRADED_SECONDS`): the limit holds per replica, never fails open; the hits
counted meanwhile are sent once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

QUOTA_DEGRADED_CHECKS = Counter(
    "infou_quota_degraded_checks_total", "Limit checks counted in process memory (Redis failed)"
)
QUOTA_DEGRADED = Gauge("infou_quota_degraded", "1 while limits are counted in process memory")
# After a Redis failure, limits stay in memory this long before Redis is tried again.
DEGRADED_SECONDS = 5.0
WINDOW = 60  # seconds: the limit is requests a minute
# Adds this replica's hits ((second, count) pairs) and returns the minute's totals.
_SYNC = """
local horizon = tonumber(ARGV[1]) - tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i]) > horizon then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local flat = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #flat, 2 do
  if tonumber(flat[i]) <= horizon then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1)
return out
"""


def _key(client_id: str) -> str:
    return f"rl:req:v1:{client_id}"


@dataclass
class _Ledger:
    """One client's minute as this replica knows it."""

    shared: dict[int, int] = field(default_factory=dict)  # every replica's, at the last sync
    pending: dict[int, int] = field(default_factory=dict)  # this replica's hits since
    inflight: dict[int, int] = field(default_factory=dict)  # sent, the reply not back yet
    last_hit: float = 0.0  # time.time() of its last request here
    refreshed: float = 0.0  # time.time() when `shared` came back from Redis
    refreshing: asyncio.Future[None] | None = None  # a refresh its requests wait for


@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until a slot frees up

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_after),
        }


class RequestRate:
    """Requests a minute per client (see the module doc)."""

    def __init__(self, redis: Redis, sync_seconds: float, store: StoreHealth) -> None:
        self._redis = redis
        self._script = redis.register_script(_SYNC)
        self._sync_seconds = sync_seconds
        # A client with a request within this is refreshed by every sync, even with no new hits
        # here (its requests to other replicas count); one idle longer is refreshed on its next.
        self._active_seconds = max(2.0, 3 * sync_seconds)
        self._ledgers: dict[str, _Ledger] = {}
        self._store = store
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def hit(self, client_id: str, limit: int) -> RateVerdict:
        """Counts one request if it fits the client's minute; refused ones are not counted."""
        now = time.time()
        second = int(now)
        ledger = self._ledgers.get(client_id)
        if ledger is None or now - ledger.last_hit > WINDOW:
            ledger = self._ledgers[client_id] = _Ledger()
        ledger.last_hit = now
        if now - ledger.refreshed > self._active_seconds and not self._store.degraded:
            # Not refreshed by the flusher lately (new here, or idle): one round trip first,
            # shared by the client's concurrent requests.
            if ledger.refreshing is None or ledger.refreshing.done():
                ledger.refreshing = asyncio.ensure_future(self._sync({client_id: ledger}))
            await asyncio.shield(ledger.refreshing)
        self._start_flusher()
        if self._store.degraded:
            QUOTA_DEGRADED_CHECKS.inc()
        horizon = second - WINDOW
        used = 0
        oldest = second
        for counts in (ledger.shared, ledger.inflight, ledger.pending):
            for at, count in counts.items():
                if at > horizon:
                    used += count
                    oldest = min(oldest, at)
        if used >= limit:
            return RateVerdict(False, limit, 0, max(1, oldest + WINDOW - second))
        ledger.pending[second] = ledger.pending.get(second, 0) + 1
        return RateVerdict(True, limit, limit - used - 1, max(1, oldest + WINDOW - second))

    async def sync(self) -> None:
        """Sends every pending hit and takes the shared totals back (the flusher's one step)."""
        now = time.time()
        for client_id in [c for c, led in self._ledgers.items() if now - led.last_hit > WINDOW]:
            del self._ledgers[client_id]
        due = {
            c: led
            for c, led in self._ledgers.items()
            if led.pending or now - led.last_hit <= self._active_seconds
        }
        if due:
            await self._sync(due)

    async def _sync(self, ledgers: dict[str, _Ledger]) -> None:
        if self._store.degraded:
            return
        now = int(time.time())
        sent = {client_id: ledger.pending for client_id, ledger in ledgers.items()}
        for ledger in ledgers.values():
            # Still counted while the call runs (the reply's totals include them).
            for at, count in ledger.pending.items():
                ledger.inflight[at] = ledger.inflight.get(at, 0) + count
            ledger.pending = {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for client_id, pending in sent.items():
                    args: list[int] = [now, WINDOW]
                    for at, count in pending.items():
                        args += [at, count]
                    await self._script(keys=[_key(client_id)], args=args, client=pipe)
                replies = await pipe.execute()
        except Exception as exc:
            # Nothing counted is lost: the hits go back to pending, sent when Redis answers.
            for client_id, pending in sent.items():
                ledger = ledgers[client_id]
                for at, count in pending.items():
                    ledger.pending[at] = ledger.pending.get(at, 0) + count
                    _take(ledger.inflight, at, count)
            self._store.failed(exc)
            return
        self._store.recovered()
        for (client_id, _), reply in zip(sent.items(), replies, strict=True):
            flat = [int(v) for v in reply]
            ledger = ledgers[client_id]
            ledger.shared = dict(zip(flat[::2], flat[1::2], strict=True))
            ledger.refreshed = time.time()
            for at, count in sent[client_id].items():
                _take(ledger.inflight, at, count)

    def _start_flusher(self) -> None:
        if not self._closed and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_forever(), name="rate-limit-sync"
            )

    async def _flush_forever(self) -> None:
        # Ends on `_closed` too: a cancel landing inside the Redis client can be lost (it
        # surfaces as a connection error, caught below), which once held shutdown for ever.
        while not self._closed:
            await asyncio.sleep(self._sync_seconds)
            try:
                await self.sync()
            except Exception as exc:  # a bug here must not stop the syncing
                log.error("rate_limit_sync_failed", error=str(exc) or type(exc).__name__)

    async def close(self) -> None:
        """Stops the flusher after sending what is pending."""
        self._closed = True
        flusher = self._flusher
        while flusher is not None and not flusher.done():
            flusher.cancel()
            await asyncio.wait({flusher}, timeout=self._sync_seconds + 1)
        if flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        with contextlib.suppress(Exception):
            await self.sync()


def _take(counts: dict[int, int], at: int, count: int) -> None:
    left = counts.get(at, 0) - count
    if left > 0:
        counts[at] = left
    else:
        counts.pop(at, None)


class StoreHealth:
    """Whether the limits' Redis answers; after a failure it is left alone for a while."""

    def __init__(self) -> None:
        self._down_until = 0.0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + DEGRADED_SECONDS
        QUOTA_DEGRADED.set(1)
        log.error("quota_store_unavailable", error=str(exc) or type(exc).__name__)

    def recovered(self) -> None:
        QUOTA_DEGRADED.set(0)
