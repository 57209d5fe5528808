"""Client-side token buckets per provider and model: requests and tokens per minute.

A bucket may go into debt: a caller takes what it needs now and is told how long to wait until
the debt is paid back. Callers queue up in arrival order without a lock (asyncio runs one at a
time) and the long-run rate never exceeds the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)


class TokenBucket:
    """`rate_per_minute` units refilled continuously, at most one minute's worth banked."""

    def __init__(
        self, rate_per_minute: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.capacity = float(rate_per_minute)
        self._rate = rate_per_minute / 60.0
        self._clock = clock
        self._level = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self._rate)
        self._updated = now

    def take(self, amount: float) -> float:
        """Takes `amount` (at most the capacity); returns the seconds to wait before using it."""
        self._refill()
        self._level -= min(amount, self.capacity)
        return max(0.0, -self._level / self._rate)

    def give_back(self, amount: float) -> None:
        """Returns units taken but not used (a call that billed fewer tokens than estimated)."""
        self._refill()
        self._level = min(self.capacity, self._level + max(0.0, amount))

    @property
    def level(self) -> float:
        self._refill()
        return self._level


# KEYS: the (provider, model) bucket hash. ARGV: rpm, tpm, tokens, max_wait_s (-1: any).
# Both buckets refill continuously (Redis's clock, so workers' clocks do not matter) and may go
# into debt; returns the seconds to wait, or -1 when that would exceed max_wait_s (nothing
# booked then).
_TAKE = """
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local need, max_wait = math.min(tonumber(ARGV[3]), tpm), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'u')
local r, k, u = tonumber(s[1]) or rpm, tonumber(s[2]) or tpm, tonumber(s[3]) or now
local dt = math.max(0, now - u)
r = math.min(rpm, r + dt * rpm / 60) - 1
k = math.min(tpm, k + dt * tpm / 60) - need
local wait = math.max(0, -r * 60 / rpm, -k * 60 / tpm)
if max_wait >= 0 and wait > max_wait then return '-1' end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(k), 'u', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return tostring(wait)
"""
# KEYS: the bucket hash. ARGV: tpm, tokens to give back.
_GIVE_BACK = """
local k = tonumber(redis.call('HGET', KEYS[1], 't'))
if not k then return 0 end
redis.call('HSET', KEYS[1], 't', tostring(math.min(tonumber(ARGV[1]), k + tonumber(ARGV[2]))))
return 1
"""
LIMITER_PREFIX: Final = "infou:llm:rate"
_REDIS_RETRY_S: Final = 5.0


class ProviderLimiter:
    """The request and token buckets of one provider and model.

    With Redis the buckets are shared by every worker (one hash per provider and model, changed
    by Lua scripts); without it, or while Redis fails, each process keeps its own.
    """

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        *,
        redis: Redis | None = None,
        key: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.requests = TokenBucket(requests_per_minute, clock=clock)
        self.tokens = TokenBucket(tokens_per_minute, clock=clock)
        self.redis = redis
        self.key = f"{LIMITER_PREFIX}:{{{key}}}"
        self._take: Any = redis.register_script(_TAKE) if redis else None
        self._give_back: Any = redis.register_script(_GIVE_BACK) if redis else None
        self._redis_down_until = 0.0

    async def take(self, tokens: int, *, max_wait_s: float | None = None) -> float | None:
        """Books one request of `tokens` tokens; the seconds to wait before sending it, or None
        (nothing booked) when that wait would be longer than `max_wait_s`."""
        if self._use_redis():
            try:
                args = [
                    self.requests_per_minute,
                    self.tokens_per_minute,
                    tokens,
                    -1 if max_wait_s is None else max_wait_s,
                ]
                wait = float(await self._take(keys=[self.key], args=args))
                return None if wait < 0 else wait
            except Exception as exc:
                self._redis_failed(exc)
        wait = max(self.requests.take(1), self.tokens.take(tokens))
        if max_wait_s is not None and wait > max_wait_s:
            self.requests.give_back(1)
            self.tokens.give_back(min(tokens, self.tokens.capacity))
            return None
        return wait

    async def settle(self, booked_tokens: int, used_tokens: int) -> None:
        """Gives back what a call booked but did not use."""
        if used_tokens >= booked_tokens:
            return
        unused = booked_tokens - used_tokens
        if self._use_redis():
            try:
                await self._give_back(keys=[self.key], args=[self.tokens_per_minute, unused])
                return
            except Exception as exc:
                self._redis_failed(exc)
        self.tokens.give_back(unused)

    def _use_redis(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        self._redis_down_until = time.monotonic() + _REDIS_RETRY_S
        log.warning("llm_limiter_redis_unavailable", error=type(exc).__name__)
