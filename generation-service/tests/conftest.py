"""generation-service fixtures: the fake LLM server, the migrated schema, settings using both."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools import engines
from infou_devtools.fakellm import FakeLLMControl, FakeLLMServer
from infou_generation.budget import DailyBudget
from infou_generation.llm.breaker import BREAKER_PREFIX
from infou_generation.main import MIGRATIONS
from infou_generation.models import SCHEMA
from infou_generation.settings import GenerationSettings
from infou_libs.db import create_engine, session_factory
from infou_libs.migrations import upgrade_async

# Budget tests each take a day of their own, far from today, so they never share a row.
_DAYS = itertools.count(1)


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """The fake OpenAI/Anthropic server, on a free port in a thread of this process."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def fake_llm(fake_llm_server: FakeLLMServer) -> FakeLLMControl:
    """Its control endpoints, with faults, knobs and counters reset for this test."""
    control = FakeLLMControl(fake_llm_server.url)
    await control.reset()
    return control


@pytest.fixture(scope="session")
async def generation_sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the generation schema of this run's database, migrated to head."""
    await upgrade_async(MIGRATIONS, database_url, SCHEMA)
    engine = create_engine(database_url, SCHEMA, pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def breaker_redis_url(redis_url: str) -> str:
    """The embedded Valkey for a module's running service, its circuit breakers fresh.

    Services share breaker state through Redis; a module's service starts with none left by
    another module's failures (the tests that test the breaker use models of their own).
    """
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{BREAKER_PREFIX}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    return redis_url


@pytest.fixture
def llm_settings(
    fake_llm_server: FakeLLMServer, redis_url: str
) -> Callable[..., GenerationSettings]:
    """Settings with every provider pointed at the fake server and Redis at the embedded
    Valkey; keyword overrides on top."""

    def make(**overrides: Any) -> GenerationSettings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "openai_api_key": "sk-test-openai",
            "openai_base_url": fake_llm_server.openai_base_url,
            "anthropic_api_key": "sk-ant-test",
            "anthropic_base_url": fake_llm_server.anthropic_base_url,
            "local_llm_base_url": fake_llm_server.openai_base_url,
            "llm_backoff_base_s": 0.01,
            "llm_backoff_max_s": 0.05,
            "llm_request_timeout_s": 5.0,
            **overrides,
        }
        return GenerationSettings(**values)

    return make


# What a running service's job tests want: no provider retries, fast backoffs and redeliveries.
_QUICK_JOBS: dict[str, Any] = {
    "llm_max_retries": 0,
    "llm_backoff_base_s": 0.01,
    "llm_request_timeout_s": 10.0,
    "jobs_ack_wait_seconds": 5,
    "jobs_retry_backoff_seconds": [0.2, 0.2, 0.2],
}


@pytest.fixture(scope="module")
def service_settings(
    module_database_url: str,
    module_nats_url: str,
    breaker_redis_url: str,
    fake_llm_server: FakeLLMServer,
) -> Callable[..., GenerationSettings]:
    """Settings for a module's running service: its own database and NATS, the embedded Valkey,
    openai and anthropic at the fake server; with `quick_jobs` (the default) no provider
    retries and fast redeliveries; keyword overrides on top."""

    def make(*, quick_jobs: bool = True, **overrides: Any) -> GenerationSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": module_database_url,
            "nats_url": module_nats_url,
            "redis_url": breaker_redis_url,
            "catalog_addr": f"127.0.0.1:{engines.free_port()}",
            "openai_api_key": "sk-test-openai",
            "openai_base_url": fake_llm_server.openai_base_url,
            "anthropic_api_key": "sk-ant-test",
            "anthropic_base_url": fake_llm_server.anthropic_base_url,
            **(_QUICK_JOBS if quick_jobs else {}),
            **overrides,
        }
        return GenerationSettings(**values)

    return make


@pytest.fixture
def budget_day() -> Callable[[], dt.date]:
    """A budget day no other test uses."""
    day = dt.date(2001, 1, 1) + dt.timedelta(days=next(_DAYS))
    return lambda: day


@pytest.fixture
def make_budget(
    generation_sessions: async_sessionmaker[AsyncSession], budget_day: Callable[[], dt.date]
) -> Callable[..., DailyBudget]:
    def make(limit_usd: str | Decimal, **kwargs: Any) -> DailyBudget:
        return DailyBudget(generation_sessions, Decimal(limit_usd), today=budget_day, **kwargs)

    return make
