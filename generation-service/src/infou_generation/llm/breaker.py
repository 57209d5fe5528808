"""Provider health shared across workers: a circuit breaker per (provider, model).

Closed: calls go through. `failure_threshold` failures (rate limits, outages, timeouts) within
`window_s` open it: for `cooldown_s` every worker skips the provider at once. After the
cool-down it is half-open: one caller, in any worker, gets to probe (`allow` returns True to
exactly one of them until the probe reports or `probe_timeout_s` passes); a success closes the
breaker, a failure opens it for another cool-down.

The state lives in Redis (three keys per provider and model, changed by Lua scripts so that
workers never interleave), so every worker sees it. Without Redis, or while Redis fails, the
breaker keeps the same state in this process only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

BreakerState = Literal["closed", "open", "half_open"]

# Every breaker key starts with this.
BREAKER_PREFIX: Final = "infou:llm:breaker"
# Redis forgets a breaker nobody touched for this long (an open one closes by forgetting).
_IDLE_TTL_MS: Final = 3_600_000
# After Redis fails, the breaker stays in-process this long before it tries Redis again.
_REDIS_RETRY_S: Final = 5.0

# KEYS: failures (sorted set), open_until (string), probe (string).
# ARGV: now, window_s, threshold, cooldown_s, member, idle_ttl_ms. Returns 1 when it opened.
_RECORD_FAILURE = """
local now = tonumber(ARGV[1])
local open_until = redis.call('GET', KEYS[2])
if open_until then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[4]), 'PX', ARGV[6])
  redis.call('DEL', KEYS[3])
  return 1
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[4]), 'PX', ARGV[6])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
# KEYS: open_until, probe. ARGV: now, probe_timeout_ms, token.
# Returns 0 closed, 1 open, 2 half-open and this caller probes, 3 half-open and another probes.
_ALLOW = """
local open_until = redis.call('GET', KEYS[1])
if not open_until then return 0 end
if tonumber(ARGV[1]) < tonumber(open_until) then return 1 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then return 2 end
return 3
"""
_ALLOW_CODES: Final[dict[int, tuple[BreakerState, bool]]] = {
    0: ("closed", True),
    1: ("open", False),
    2: ("half_open", True),
    3: ("half_open", False),
}


@dataclass
class _Local:
    """One breaker's state in this process."""

    failures: list[float] = field(default_factory=list)
    open_until: float | None = None
    probe_until: float = 0.0


class CircuitBreaker:
    """Failures in a window → open for a cool-down → one half-open probe; shared through Redis."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        failure_threshold: int = 5,
        window_s: float = 30.0,
        cooldown_s: float = 30.0,
        probe_timeout_s: float = 60.0,
        prefix: str = BREAKER_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.probe_timeout_s = probe_timeout_s
        self.prefix = prefix
        self._clock = clock
        self._local: dict[tuple[str, str], _Local] = {}
        self._redis_down_until = 0.0
        self._record_failure: Any = redis.register_script(_RECORD_FAILURE) if redis else None
        self._allow: Any = redis.register_script(_ALLOW) if redis else None

    @property
    def enabled(self) -> bool:
        return self.failure_threshold > 0

    async def allow(self, provider: str, model: str) -> bool:
        """Whether a call to this provider and model may go out now."""
        return (await self.check(provider, model))[1]

    async def check(self, provider: str, model: str) -> tuple[BreakerState, bool]:
        """The breaker's state, and whether this caller may call (the half-open probe may)."""
        if not self.enabled:
            return "closed", True
        now = self._clock()
        if self._use_redis():
            try:
                code = await self._allow(
                    keys=[self._key(provider, model, "open"), self._key(provider, model, "probe")],
                    args=[now, int(self.probe_timeout_s * 1000), uuid.uuid4().hex],
                )
                return _ALLOW_CODES[int(code)]
            except Exception as exc:
                self._redis_failed(exc)
        state = self._local.setdefault((provider, model), _Local())
        if state.open_until is None:
            return "closed", True
        if now < state.open_until:
            return "open", False
        if now >= state.probe_until:
            state.probe_until = now + self.probe_timeout_s
            return "half_open", True
        return "half_open", False

    async def record_success(self, provider: str, model: str) -> None:
        """The provider answered: the breaker closes and its failure window starts over."""
        if not self.enabled:
            return
        if self._use_redis():
            try:
                await self.redis.delete(  # type: ignore[union-attr]
                    *(self._key(provider, model, part) for part in ("failures", "open", "probe"))
                )
                return
            except Exception as exc:
                self._redis_failed(exc)
        self._local.pop((provider, model), None)

    async def record_failure(self, provider: str, model: str) -> bool:
        """The provider failed (rate limit, outage, timeout); True when the breaker is now open."""
        if not self.enabled:
            return False
        now = self._clock()
        if self._use_redis():
            try:
                opened = await self._record_failure(
                    keys=[
                        self._key(provider, model, part) for part in ("failures", "open", "probe")
                    ],
                    args=[
                        now,
                        self.window_s,
                        self.failure_threshold,
                        self.cooldown_s,
                        uuid.uuid4().hex,
                        _IDLE_TTL_MS,
                    ],
                )
                if opened:
                    self._log_open(provider, model)
                return bool(opened)
            except Exception as exc:
                self._redis_failed(exc)
        state = self._local.setdefault((provider, model), _Local())
        if state.open_until is None:
            state.failures = [t for t in state.failures if t > now - self.window_s] + [now]
            if len(state.failures) < self.failure_threshold:
                return False
        state.failures.clear()
        state.open_until = now + self.cooldown_s
        state.probe_until = 0.0
        self._log_open(provider, model)
        return True

    async def state(self, provider: str, model: str) -> BreakerState:
        """The state without taking the half-open probe (for health reports and tests)."""
        if not self.enabled:
            return "closed"
        now = self._clock()
        open_until: float | None = None
        if self._use_redis():
            try:
                raw = await self.redis.get(self._key(provider, model, "open"))  # type: ignore[union-attr]
                open_until = float(raw) if raw is not None else None
            except Exception as exc:
                self._redis_failed(exc)
            else:
                return _state_at(now, open_until)
        local = self._local.get((provider, model))
        return _state_at(now, local.open_until if local else None)

    def _key(self, provider: str, model: str, part: str) -> str:
        # One hash tag per breaker: its keys live in one slot of a Redis cluster.
        return f"{self.prefix}:{{{provider}:{model}}}:{part}"

    def _use_redis(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        self._redis_down_until = time.monotonic() + _REDIS_RETRY_S
        log.warning("llm_breaker_redis_unavailable", error=type(exc).__name__)

    def _log_open(self, provider: str, model: str) -> None:
        log.warning(
            "llm_breaker_open", llm_provider=provider, model=model, cooldown_s=self.cooldown_s
        )


def _state_at(now: float, open_until: float | None) -> BreakerState:
    if open_until is None:
        return "closed"
    return "open" if now < open_until else "half_open"
