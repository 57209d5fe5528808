"""What workers share through Redis besides the breakers: each job's call allowance and the
RPM/TPM budgets per provider and model. Two routers (two workers) on one real Valkey."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.engines import free_port
from infou_devtools.fakellm import FakeLLMControl
from infou_generation.llm.ratelimit import ProviderLimiter
from infou_generation.llm.router import LLMRouter, build_router
from infou_generation.llm.types import CallsExhaustedError, LLMRequest, ProviderUnavailableError
from infou_generation.settings import GenerationSettings


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def workers(
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> AsyncIterator[Callable[..., tuple[LLMRouter, LLMRouter]]]:
    """Two routers on the same settings and Redis, with models (so buckets) of this test only."""
    made: list[LLMRouter] = []

    def make(**overrides: Any) -> tuple[LLMRouter, LLMRouter]:
        suffix = uuid.uuid4().hex[:8]
        settings = llm_settings(
            openai_model=f"gpt-{suffix}", anthropic_model=f"claude-{suffix}", **overrides
        )
        pair = (
            build_router(settings, generation_sessions, redis=redis),
            build_router(settings, generation_sessions, redis=redis),
        )
        made.extend(pair)
        return pair

    yield make
    for router in made:
        await router.aclose()


def _request(**overrides: Any) -> LLMRequest:
    context = {"topic": "파이썬 기초"}
    values: dict[str, Any] = {
        "task": "article",
        "system": "Write a short Korean article plan.",
        "user": f"<task_context>{json.dumps(context, ensure_ascii=False)}</task_context>",
        "schema_name": "infou_test_plan",
        "json_schema": {
            "type": "object",
            "properties": {"title": {"type": "string"}},
            "required": ["title"],
        },
        "context": context,
        "max_output_tokens": 200,
        "session_id": f"sess_{uuid.uuid4().hex[:12]}",
        **overrides,
    }
    return LLMRequest(**values)


async def test_a_jobs_calls_are_bounded_over_its_deliveries_on_any_worker(
    workers: Callable[..., tuple[LLMRouter, LLMRouter]], fake_llm: FakeLLMControl
) -> None:
    """Breakers off, every call a 503: the first delivery spends its retries, the redelivery on
    another worker may make only what is left of the job's allowance."""
    first, second = workers(
        llm_routes={"article": ["openai"]},
        llm_breaker_failures=0,
        llm_max_retries=3,
        llm_max_calls_per_job=5,
    )
    await fake_llm.arm("server_error", times=-1, status=503)
    job_id = f"job-{uuid.uuid4().hex}"
    with pytest.raises(ProviderUnavailableError):
        await first.generate(_request(job_id=job_id))
    assert (await fake_llm.stats())["total"] == 4  # one try and three retries

    with pytest.raises(CallsExhaustedError):
        await second.generate(_request(job_id=job_id))
    assert (await fake_llm.stats())["total"] == 5
    with pytest.raises(CallsExhaustedError):
        await first.generate(_request(job_id=job_id))
    assert (await fake_llm.stats())["total"] == 5

    # Another job has an allowance of its own.
    with pytest.raises(ProviderUnavailableError):
        await second.generate(_request(job_id=f"job-{uuid.uuid4().hex}"))
    assert (await fake_llm.stats())["total"] == 9


async def test_the_rpm_budget_is_shared_and_a_long_wait_goes_to_the_next_provider(
    workers: Callable[..., tuple[LLMRouter, LLMRouter]], fake_llm: FakeLLMControl
) -> None:
    """Two requests a minute for openai across both workers: the third call would wait about
    30 s, longer than INFOU_LLM_LIMITER_MAX_WAIT_S, so anthropic answers it at once."""
    first, second = workers(
        llm_routes={"article": ["openai", "anthropic"]},
        llm_providers={"openai": {"requests_per_minute": 2}},
        llm_limiter_max_wait_s=5.0,
    )
    assert (await first.generate(_request())).provider == "openai"
    assert (await second.generate(_request())).provider == "openai"
    assert (await first.generate(_request())).provider == "anthropic"
    assert (await second.generate(_request())).provider == "anthropic"
    assert (await fake_llm.stats())["requests"] == {"openai": 2, "anthropic": 2}


async def test_two_limiters_on_one_key_book_in_the_same_buckets(redis: Redis) -> None:
    key = f"openai:gpt-{uuid.uuid4().hex[:8]}"
    one = ProviderLimiter(60, 1000, redis=redis, key=key)
    two = ProviderLimiter(60, 1000, redis=redis, key=key)
    assert await one.take(600) == 0
    assert await two.take(400) == 0
    # The token bucket is empty: 300 more tokens are 18 s of refill at 1000 a minute.
    wait = await one.take(300)
    assert wait == pytest.approx(18, abs=0.5)
    # A wait over the caller's limit books nothing.
    assert await two.take(300, max_wait_s=1.0) is None
    assert await two.take(300) == pytest.approx(36, abs=0.5)
    # The first call used only 100 of its 600 tokens: 500 come back for every worker.
    await one.settle(600, 100)
    assert await two.take(1) == pytest.approx(6.06, abs=0.5)


async def test_while_redis_is_unreachable_a_limiter_keeps_its_buckets_in_process() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}")
    try:
        limiter = ProviderLimiter(2, 10**6, redis=unreachable, key="openai:gpt-x")
        assert await limiter.take(10) == 0
        assert await limiter.take(10) == 0
        assert await limiter.take(10, max_wait_s=1.0) is None
        assert await limiter.take(10) == pytest.approx(30, abs=1)
    finally:
        await unreachable.aclose()
