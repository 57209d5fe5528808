"""The provider circuit breaker: in real Valkey (shared by two "workers") and in-process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.engines import free_port
from infou_devtools.fakellm import FakeLLMControl
from infou_generation.llm.breaker import CircuitBreaker
from infou_generation.llm.router import build_router
from infou_generation.llm.types import LLMError, LLMRequest, ProvidersDownError
from infou_generation.settings import GenerationSettings


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


MakeBreaker = Callable[..., CircuitBreaker]


@pytest.fixture(params=["redis", "in_process"])
def make_breaker(request: pytest.FixtureRequest, redis: Redis, clock: Clock) -> MakeBreaker:
    """Breakers that share state the way workers do: through Valkey, or (in-process) one object."""
    prefix = f"test:breaker:{uuid.uuid4().hex}"
    shared: list[CircuitBreaker] = []

    def make(**options: object) -> CircuitBreaker:
        values: dict[str, object] = {
            "failure_threshold": 3,
            "window_s": 10.0,
            "cooldown_s": 30.0,
            "probe_timeout_s": 20.0,
            "prefix": prefix,
            "clock": clock,
            **options,
        }
        if request.param == "redis":
            return CircuitBreaker(redis, **values)  # type: ignore[arg-type]
        if not shared:
            shared.append(CircuitBreaker(None, **values))  # type: ignore[arg-type]
        return shared[0]

    return make


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_failures_in_the_window_open_the_breaker_for_every_worker(
    make_breaker: MakeBreaker, clock: Clock
) -> None:
    one, two = make_breaker(), make_breaker()
    assert await one.record_failure("openai", "gpt-4.1") is False
    clock.now += 1
    assert await two.record_failure("openai", "gpt-4.1") is False
    assert await one.state("openai", "gpt-4.1") == "closed"
    clock.now += 1
    assert await one.record_failure("openai", "gpt-4.1") is True

    for worker in (one, two):
        assert await worker.state("openai", "gpt-4.1") == "open"
        assert await worker.allow("openai", "gpt-4.1") is False
    # Another model of the same provider, and another provider, are not affected.
    assert await two.allow("openai", "gpt-4.1-mini") is True
    assert await two.allow("anthropic", "gpt-4.1") is True


async def test_failures_outside_the_window_do_not_add_up(
    make_breaker: MakeBreaker, clock: Clock
) -> None:
    breaker = make_breaker()
    for _ in range(2):
        assert await breaker.record_failure("local", "llama") is False
    clock.now += 11  # past the 10 s window
    assert await breaker.record_failure("local", "llama") is False
    assert await breaker.record_failure("local", "llama") is False
    assert await breaker.state("local", "llama") == "closed"
    assert await breaker.record_failure("local", "llama") is True


async def test_a_success_starts_the_window_over(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    await breaker.record_failure("anthropic", "claude")
    await breaker.record_failure("anthropic", "claude")
    await breaker.record_success("anthropic", "claude")
    assert await breaker.record_failure("anthropic", "claude") is False
    assert await breaker.record_failure("anthropic", "claude") is False
    assert await breaker.state("anthropic", "claude") == "closed"


async def _open(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        await breaker.record_failure("openai", "m")
    assert await breaker.state("openai", "m") == "open"


async def test_after_the_cool_down_exactly_one_worker_probes_and_success_closes(
    make_breaker: MakeBreaker, clock: Clock
) -> None:
    one, two = make_breaker(), make_breaker()
    await _open(one)
    clock.now += 29
    assert await two.allow("openai", "m") is False
    clock.now += 2
    assert await one.state("openai", "m") == "half_open"
    assert await one.check("openai", "m") == ("half_open", True)
    assert await two.check("openai", "m") == ("half_open", False)
    assert await one.allow("openai", "m") is False  # one probe at a time, even for the prober

    await one.record_success("openai", "m")
    assert await two.check("openai", "m") == ("closed", True)
    assert await two.record_failure("openai", "m") is False  # a fresh window


async def test_a_failed_probe_opens_the_breaker_for_another_cool_down(
    make_breaker: MakeBreaker, clock: Clock
) -> None:
    one, two = make_breaker(), make_breaker()
    await _open(one)
    clock.now += 31
    assert await one.allow("openai", "m") is True
    assert await one.record_failure("openai", "m") is True
    assert await two.state("openai", "m") == "open"
    clock.now += 29
    assert await two.allow("openai", "m") is False
    clock.now += 2
    assert await two.allow("openai", "m") is True


async def test_a_probe_that_never_reports_lets_another_worker_probe(
    make_breaker: MakeBreaker, clock: Clock
) -> None:
    one, two = make_breaker(), make_breaker()
    await _open(one)
    clock.now += 31
    assert await one.allow("openai", "m") is True
    if one.redis is not None:
        # The probe's claim expires in Redis on Redis's own clock.
        await one.redis.pexpire(one._key("openai", "m", "probe"), 1)
        await _sleep_ms(20)
    else:
        clock.now += 21
    assert await two.allow("openai", "m") is True


async def _sleep_ms(ms: int) -> None:
    await asyncio.sleep(ms / 1000)


async def test_a_threshold_of_zero_switches_the_breaker_off(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker(failure_threshold=0)
    for _ in range(10):
        assert await breaker.record_failure("openai", "m") is False
    assert await breaker.allow("openai", "m") is True
    assert await breaker.state("openai", "m") == "closed"


async def test_without_reachable_redis_the_breaker_keeps_working_in_process(clock: Clock) -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    breaker = CircuitBreaker(unreachable, failure_threshold=2, cooldown_s=30.0, clock=clock)
    try:
        assert await breaker.allow("openai", "m") is True
        assert await breaker.record_failure("openai", "m") is False
        assert await breaker.record_failure("openai", "m") is True
        assert await breaker.allow("openai", "m") is False
        clock.now += 31
        assert await breaker.allow("openai", "m") is True
        await breaker.record_success("openai", "m")
        assert await breaker.state("openai", "m") == "closed"
    finally:
        await unreachable.aclose()


# --- in the router ---------------------------------------------------------------------------


def _request() -> LLMRequest:
    context = {"topic": "파이썬 기초"}
    return LLMRequest(
        task="article",
        system="Write a short Korean article plan.",
        user=f"<task_context>{json.dumps(context, ensure_ascii=False)}</task_context>",
        schema_name="infou_test_plan",
        json_schema={
            "type": "object",
            "properties": {"title": {"type": "string"}},
            "required": ["title"],
        },
        context=context,
        max_output_tokens=200,
        session_id=f"sess_{uuid.uuid4().hex[:12]}",
    )


async def test_an_open_provider_is_skipped_at_once_by_every_worker(
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
    fake_llm: FakeLLMControl,
    redis: Redis,
) -> None:
    """Every provider answers 429: the first worker opens each breaker after three calls
    (instead of 1 + llm_max_retries = 4), the second worker makes no call at all."""
    suffix = uuid.uuid4().hex[:8]  # models of this test only: breakers of their own
    settings = llm_settings(
        openai_model=f"gpt-{suffix}",
        anthropic_model=f"claude-{suffix}",
        local_llm_model=f"llama-{suffix}",
        llm_breaker_failures=3,
        llm_max_retries=3,
    )
    first = build_router(settings, generation_sessions, redis=redis)
    second = build_router(settings, generation_sessions, redis=redis)
    await fake_llm.arm("rate_limit", times=-1, retry_after=0.01)
    try:
        with pytest.raises(LLMError):
            await first.generate(_request())
        calls = (await fake_llm.stats())["total"]
        assert calls == 3 * len(settings.route("article"))
        for name in settings.route("article"):
            assert await second.breaker.state(name, settings.provider_config(name).model) == "open"

        # Every provider is open: the second worker gives up at once, calling nobody.
        with pytest.raises(ProvidersDownError, match="cooling down"):
            await second.generate(_request())
        assert (await fake_llm.stats())["total"] == calls
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_router_closes_the_breaker_when_the_probe_succeeds(
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
    fake_llm: FakeLLMControl,
    redis: Redis,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = llm_settings(
        openai_model=f"gpt-{suffix}",
        llm_routes={"article": ["openai"]},
        llm_breaker_failures=2,
        llm_breaker_cooldown_s=0.2,
        llm_max_retries=3,
    )
    router = build_router(settings, generation_sessions, redis=redis)
    await fake_llm.arm("rate_limit", times=2, retry_after=0.01)
    try:
        with pytest.raises(LLMError):
            await router.generate(_request())
        assert await router.breaker.state("openai", f"gpt-{suffix}") == "open"
        await asyncio.sleep(0.3)
        result = await router.generate(_request())
        assert result.provider == "openai"
        assert await router.breaker.state("openai", f"gpt-{suffix}") == "closed"
    finally:
        await router.aclose()
