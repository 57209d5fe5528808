"""The call allowance of a job: how many provider calls one job may make, over every attempt,
provider, regeneration and JetStream redelivery.

Without it each delivery starts over and job retries multiply provider retries (4 deliveries ×
2 providers × 4 attempts = 32 calls for one failing session). The count lives in Redis under the
job's id, so a redelivery on another worker continues it; without Redis, or while Redis fails,
each process counts on its own (the bound then holds per process).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Final

from redis.asyncio import Redis

from infou_libs.logging import get_logger

log = get_logger(__name__)

ALLOWANCE_PREFIX: Final = "infou:llm:calls"
# A job's count outlives every redelivery of it (back-offs add up to minutes, not a day).
_TTL_S: Final = 86_400
_REDIS_RETRY_S: Final = 5.0
# Jobs counted in process at most (the oldest are forgotten first).
_LOCAL_JOBS: Final = 10_000

# KEYS: the job's count. ARGV: ttl seconds. Returns the count including this call.
_TAKE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class CallAllowance:
    """Counts a job's provider calls; `take` says whether one more may go out."""

    def __init__(
        self, redis: Redis | None, max_calls: int, *, prefix: str = ALLOWANCE_PREFIX
    ) -> None:
        self.redis = redis
        self.max_calls = max_calls
        self.prefix = prefix
        self._take: Any = redis.register_script(_TAKE) if redis else None
        self._local: OrderedDict[str, int] = OrderedDict()
        self._redis_down_until = 0.0

    async def take(self, job_id: str) -> bool:
        """Counts one call of the job; False when the job has used its allowance up."""
        if self.max_calls <= 0:
            return True
        return await self.count(job_id, add=1) <= self.max_calls

    async def count(self, job_id: str, *, add: int = 0) -> int:
        """The calls the job made (after adding `add`)."""
        key = f"{self.prefix}:{job_id}"
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                if add:
                    return int(await self._take(keys=[key], args=[_TTL_S]))
                raw = await self.redis.get(key)
                return int(raw or 0)
            except Exception as exc:
                self._redis_down_until = time.monotonic() + _REDIS_RETRY_S
                log.warning("llm_allowance_redis_unavailable", error=type(exc).__name__)
        count = self._local.pop(job_id, 0) + add
        self._local[job_id] = count
        while len(self._local) > _LOCAL_JOBS:
            self._local.popitem(last=False)
        return count
