"""Client-side token buckets per provider: requests per minute and tokens per minute.

A bucket may go into debt: a caller takes what it needs now and is told how long to wait until
the debt is paid back. Callers queue up in arrival order without a lock (asyncio runs one at a
time) and the long-run rate never exceeds the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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


class ProviderLimiter:
    """The request and token buckets of one provider."""

    def __init__(
        self,
        requests_per_minute: int,
        tokens_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = TokenBucket(requests_per_minute, clock=clock)
        self.tokens = TokenBucket(tokens_per_minute, clock=clock)

    def take(self, tokens: int) -> float:
        """Books one request of `tokens` tokens; returns the seconds to wait before sending it."""
        return max(self.requests.take(1), self.tokens.take(tokens))

    def settle(self, booked_tokens: int, used_tokens: int) -> None:
        """Gives back what a call booked but did not use."""
        if used_tokens < booked_tokens:
            self.tokens.give_back(booked_tokens - used_tokens)
