"""Token buckets with a hand-driven clock (in process; test_llm_shared_limits: in Redis)."""

import pytest

from infou_generation.llm.ratelimit import ProviderLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_a_minute_of_work_through_then_makes_callers_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock=clock)  # one a second
    assert [bucket.take(1) for _ in range(60)] == [0.0] * 60
    # Debt queues callers: the next ones wait one, then two seconds.
    assert bucket.take(1) == pytest.approx(1.0)
    assert bucket.take(1) == pytest.approx(2.0)
    clock.now = 2.0
    assert bucket.take(1) == pytest.approx(1.0)


def test_a_request_larger_than_the_bucket_waits_at_most_a_minute() -> None:
    bucket = TokenBucket(1000, clock=Clock())
    assert bucket.take(5000) == 0.0  # capped at the capacity: the bucket is now empty
    assert bucket.take(500) == pytest.approx(30.0)


async def test_unused_tokens_are_given_back() -> None:
    clock = Clock()
    limiter = ProviderLimiter(requests_per_minute=1000, tokens_per_minute=6000, clock=clock)
    assert await limiter.take(6000) == 0.0
    await limiter.settle(booked_tokens=6000, used_tokens=1000)
    assert limiter.tokens.level == pytest.approx(5000)
    # The request bucket still counts the request.
    assert limiter.requests.level == pytest.approx(999)


async def test_requests_per_minute_bound_even_small_calls() -> None:
    clock = Clock()
    limiter = ProviderLimiter(requests_per_minute=2, tokens_per_minute=10**6, clock=clock)
    assert await limiter.take(10) == 0.0
    assert await limiter.take(10) == 0.0
    assert await limiter.take(10) == pytest.approx(30.0)
    # A caller that will not wait that long books nothing.
    assert await limiter.take(10, max_wait_s=1.0) is None
    assert await limiter.take(10) == pytest.approx(60.0)


def test_refill_never_exceeds_the_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock=clock)
    bucket.take(30)
    clock.now = 3600
    assert bucket.level == pytest.approx(60)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
