"""The daily budget on real Postgres: reserve, settle, refuse, no overshoot under concurrency."""

import asyncio
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation.budget import DailyBudget
from infou_generation.llm import metrics
from infou_generation.llm.types import BudgetExceededError
from infou_generation.models import SCHEMA, LLMBudgetDay, LLMBudgetReservation
from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.errors import BudgetExceeded


async def test_reserve_then_settle_moves_the_hold_into_spend(
    make_budget: Callable[..., DailyBudget], generation_sessions: async_sessionmaker[AsyncSession]
) -> None:
    budget = make_budget("1.00")
    held = await budget.reserve(Decimal("0.3"), provider="openai", task="article")
    status = await budget.status()
    assert (status.spent_usd, status.reserved_usd) == (Decimal(0), Decimal("0.3"))

    async with unit_of_work(generation_sessions) as session:
        await budget.settle(session, held, Decimal("0.1234561"))
    status = await budget.status()
    # Rounded up to a millionth; the hold is gone.
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.123457"), Decimal(0))
    async with generation_sessions() as session:
        assert await session.get(LLMBudgetReservation, held.id) is None


async def test_a_call_that_does_not_fit_is_refused_with_the_budget_code(
    make_budget: Callable[..., DailyBudget],
) -> None:
    budget = make_budget("1.00")
    await budget.reserve(Decimal("0.8"), provider="openai", task="article")
    with pytest.raises(BudgetExceededError) as refused:
        await budget.reserve(Decimal("0.3"), provider="openai", task="article")
    # The gRPC layer maps it through the domain error it extends.
    assert isinstance(refused.value, BudgetExceeded)
    assert refused.value.code == "LLM_BUDGET_EXCEEDED"
    # What still fits is still granted.
    await budget.reserve(Decimal("0.2"), provider="local", task="article")
    assert (await budget.status()).reserved_usd == Decimal("1.0")


async def test_concurrent_reservations_never_overshoot(
    make_budget: Callable[..., DailyBudget],
) -> None:
    budget = make_budget("1.00")
    outcomes = await asyncio.gather(
        *(budget.reserve(Decimal("0.3"), provider="openai", task="article") for _ in range(12)),
        return_exceptions=True,
    )
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert (len(granted), len(refused)) == (3, 9)
    assert (await budget.status()).reserved_usd == Decimal("0.9")


async def test_two_processes_share_one_budget(
    database_url: str,
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    # A second engine with its own pool stands for a second worker process.
    other_engine = create_engine(database_url, SCHEMA, pool_size=5)
    try:
        first = DailyBudget(generation_sessions, Decimal("2.00"), today=budget_day)
        second = DailyBudget(session_factory(other_engine), Decimal("2.00"), today=budget_day)
        calls = [
            budget.reserve(Decimal("0.25"), provider="anthropic", task="curriculum")
            for _ in range(10)
            for budget in (first, second)
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await other_engine.dispose()
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(granted) == 8
    assert all(isinstance(o, BudgetExceededError) for o in outcomes if o not in granted)
    assert (await first.status()).reserved_usd == Decimal("2.00")


async def test_holds_of_dead_calls_are_given_back(
    make_budget: Callable[..., DailyBudget], generation_sessions: async_sessionmaker[AsyncSession]
) -> None:
    budget = make_budget("1.00")
    stale = await budget.reserve(Decimal("0.9"), provider="openai", task="article")
    # The process that held it died long ago.
    async with unit_of_work(generation_sessions) as session:
        await session.execute(
            update(LLMBudgetReservation)
            .where(LLMBudgetReservation.id == stale.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    # Full at first sight; reclaiming the dead hold makes room.
    fresh = await budget.reserve(Decimal("0.5"), provider="openai", task="article")
    assert (await budget.status()).reserved_usd == Decimal("0.5")
    # Settling the reclaimed hold later adds its spend without releasing anything twice.
    async with unit_of_work(generation_sessions) as session:
        await budget.settle(session, stale, Decimal("0.05"))
        await budget.settle(session, fresh, Decimal("0.10"))
    status = await budget.status()
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.15"), Decimal(0))


async def test_crossing_the_warning_ratio_warns_once(
    make_budget: Callable[..., DailyBudget], generation_sessions: async_sessionmaker[AsyncSession]
) -> None:
    budget = make_budget("1.00", warn_ratio=0.8)
    warnings_before = metrics.LLM_BUDGET_WARNINGS._value.get()

    async def spend(amount: str) -> None:
        held = await budget.reserve(Decimal(amount), provider="openai", task="article")
        async with unit_of_work(generation_sessions) as session:
            await budget.settle(session, held, Decimal(amount))

    await spend("0.5")
    assert metrics.LLM_BUDGET_WARNINGS._value.get() == warnings_before
    await spend("0.35")
    await spend("0.1")
    assert metrics.LLM_BUDGET_WARNINGS._value.get() == warnings_before + 1
    assert metrics.LLM_BUDGET_RATIO._value.get() == pytest.approx(0.95)
    async with generation_sessions() as session:
        warned = await session.scalar(
            select(LLMBudgetDay.warned_at).where(LLMBudgetDay.day == budget.today())
        )
    assert warned is not None


async def test_release_gives_the_whole_hold_back(make_budget: Callable[..., DailyBudget]) -> None:
    budget = make_budget("0.50")
    held = await budget.reserve(Decimal("0.5"), provider="openai", task="article")
    await budget.release(held)
    status = await budget.status()
    assert (status.spent_usd, status.reserved_usd) == (Decimal(0), Decimal(0))
    await budget.reserve(Decimal("0.5"), provider="openai", task="article")
