"""Admission before spending: the arithmetic, then admissions on real Postgres (refused at
once when the day or the client's share has no room, charged as calls settle, released)."""

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import budget as budget_mod
from infou_generation import repository
from infou_generation.admission import (
    Admissions,
    BudgetExhausted,
    Granted,
    Workload,
    client_allowance,
    estimate_usd,
    fits,
    outstanding,
    seconds_until_next_day,
    typical_cost,
)
from infou_generation.budget import DailyBudget
from infou_generation.models import BudgetAdmission, LLMBudgetDay
from infou_generation.settings import GenerationSettings
from infou_libs.db import unit_of_work
from infou_libs.errors import InvalidArgument

PER_CALL = {"curriculum": Decimal("0.02"), "article": Decimal("0.03"), "subtopics": Decimal("0.01")}

# ── the arithmetic ─────────────────────────────────────────────────────────────────────


def test_an_estimate_adds_each_call_at_its_cost_times_the_margin() -> None:
    session = Workload(curricula=1, articles=9)
    assert estimate_usd(session, PER_CALL, Decimal(1)) == Decimal("0.29")
    assert estimate_usd(session, PER_CALL, Decimal("1.5")) == Decimal("0.435")
    assert estimate_usd(Workload(subtopic_generations=1), PER_CALL, Decimal(1)) == Decimal("0.01")
    assert estimate_usd(Workload(), PER_CALL, Decimal(2)) == Decimal(0)
    # Rounded up to the ledger's millionth of a dollar, never down.
    assert estimate_usd(Workload(articles=1), {"article": Decimal("1e-7")}, Decimal(1)) == Decimal(
        "0.000001"
    )


def test_typical_costs_use_typical_tokens_not_the_maximum() -> None:
    # gpt-4.1 prices: 1500 in, 2000 out for an article.
    cost = typical_cost(Decimal("0.000002"), Decimal("0.000008"), "article")
    assert cost == Decimal("0.019")
    # 8000 output tokens (the per-call maximum) would be 0.067: more than 3x too much.
    assert cost < Decimal("0.000002") * 1500 + Decimal("0.000008") * 8000


def test_shares_holds_and_room() -> None:
    assert client_allowance(Decimal("1.00"), Decimal("0.1")) == Decimal("0.1")
    assert client_allowance(Decimal("1.00"), Decimal("0.3333333")) == Decimal("0.333333")
    assert outstanding(Decimal("0.3"), Decimal("0.1")) == Decimal("0.2")
    assert outstanding(Decimal("0.3"), Decimal("0.5")) == Decimal(0)
    room: dict[str, Decimal] = {
        "spent": Decimal("0.5"),
        "reserved": Decimal("0.2"),
        "admitted": Decimal("0.2"),
        "limit": Decimal("1"),
    }
    assert fits(**room, amount=Decimal("0.1"))
    assert not fits(**room, amount=Decimal("0.100001"))


def test_retry_after_runs_to_the_budget_days_midnight() -> None:
    utc = dt.datetime(2026, 12, 3, 23, 59, 30, tzinfo=dt.UTC)
    assert seconds_until_next_day(utc, ZoneInfo("UTC")) == 30
    # 23:59:30 UTC is 08:59:30 in Seoul: the Seoul day ends in 15 h 0 m 30 s.
    assert seconds_until_next_day(utc, ZoneInfo("Asia/Seoul")) == 15 * 3600 + 30
    assert seconds_until_next_day(dt.datetime(2026, 12, 4, tzinfo=dt.UTC), ZoneInfo("UTC")) == 86400


# ── admissions on Postgres ──────────────────────────────────────────────────────────────


@pytest.fixture
def admissions(
    generation_sessions: async_sessionmaker[AsyncSession],
    llm_settings: Callable[..., GenerationSettings],
    budget_day: Callable[[], dt.date],
) -> Callable[..., Admissions]:
    def make(**overrides: Any) -> Admissions:
        settings = llm_settings(**{"daily_budget_usd": Decimal("1.00"), **overrides})
        return Admissions(generation_sessions, settings, today=budget_day)

    return make


def ref() -> str:
    return f"sess_{uuid.uuid4().hex}"


async def day_row(
    sessions: async_sessionmaker[AsyncSession], day: dt.date
) -> tuple[Decimal, Decimal, Decimal]:
    """The day's (spent, reserved, what open admissions may still spend)."""
    async with sessions() as session:
        row = await session.get(LLMBudgetDay, day)
        admitted = await repository.admitted_usd(session, day)
    if row is None:  # no call has reserved yet: admissions alone do not make the row
        return Decimal(0), Decimal(0), admitted
    return row.spent_usd, row.reserved_usd, admitted


async def test_a_burst_is_admitted_until_the_day_is_held_then_refused_with_retry_after(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions(client_budget_share=1.0)
    work = Workload(curricula=1, articles=9)
    estimate = await gate.estimate(work)
    assert Decimal("0.05") < estimate < Decimal("0.5")
    expected = int(Decimal("1.00") // estimate)
    outcomes = await asyncio.gather(
        *(
            gate.reserve(kind="session", reference_id=ref(), work=work, client_id=f"c{i}")
            for i in range(expected + 5)
        ),
        return_exceptions=True,
    )
    granted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExhausted)]
    assert len(granted) == expected
    assert len(refused) == 5
    assert refused[0].code == "BUDGET_EXHAUSTED"
    assert refused[0].retry_after is not None
    assert 0 < refused[0].retry_after <= 86400
    spent, reserved, admitted = await day_row(generation_sessions, budget_day())
    assert (spent, reserved) == (Decimal(0), Decimal(0))
    assert admitted == estimate * expected <= Decimal("1.00")


async def test_one_client_cannot_take_more_than_its_share(
    admissions: Callable[..., Admissions],
) -> None:
    gate = admissions(client_budget_share=0.25)
    work = Workload(curricula=1, articles=3)
    estimate = await gate.estimate(work)
    fit = int(Decimal("0.25") // estimate)
    for _ in range(fit):
        await gate.reserve(kind="session", reference_id=ref(), work=work, client_id="greedy")
    with pytest.raises(BudgetExhausted):
        await gate.reserve(kind="session", reference_id=ref(), work=work, client_id="greedy")
    # Someone else still gets in; an API key's own larger share lets its client in too.
    await gate.reserve(kind="session", reference_id=ref(), work=work, client_id="modest")
    await gate.reserve(
        kind="session", reference_id=ref(), work=work, client_id="greedy", client_share=0.5
    )


async def test_a_session_over_the_cost_cap_is_refused_naming_the_field(
    admissions: Callable[..., Admissions],
) -> None:
    gate = admissions(session_cost_cap_usd=Decimal("0.05"))
    with pytest.raises(InvalidArgument) as caught:
        await gate.reserve(
            kind="session",
            reference_id=ref(),
            work=Workload(curricula=1, articles=30),
            client_id="c",
        )
    assert caught.value.field == "options.max_articles_per_subtopic"
    assert caught.value.code == "SESSION_COST_CAP_EXCEEDED"


async def test_calls_charge_their_admission_and_release_gives_back_the_rest(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions()
    session_id = ref()
    granted = await gate.reserve(
        kind="session",
        reference_id=session_id,
        work=Workload(curricula=1, articles=2),
        client_id="c",
    )
    # Asking again for the same session is the same admission (a retried create).
    again = await gate.reserve(
        kind="session", reference_id=session_id, work=Workload(articles=9), client_id="c"
    )
    assert again == granted
    budget = DailyBudget(generation_sessions, Decimal("1.00"), today=budget_day)
    call = await budget.reserve(
        Decimal("0.2"), provider="openai", task="article", reference_id=session_id
    )
    async with unit_of_work(generation_sessions) as session:
        await budget.settle(session, call, Decimal("0.01"))
    spent, reserved, admitted = await day_row(generation_sessions, budget_day())
    assert (spent, reserved) == (Decimal("0.01"), Decimal(0))
    # The call's cost moved from the admission's hold into spend: counted once.
    assert admitted == granted.estimated_usd - Decimal("0.01")
    freed = await gate.release(session_id)
    assert freed == granted.estimated_usd - Decimal("0.01")
    assert (await day_row(generation_sessions, budget_day()))[2] == Decimal(0)
    assert await gate.release(session_id) == Decimal(0)  # once only


async def test_an_admission_never_released_stops_holding_once_it_expires(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions(client_budget_share=1.0)
    work = Workload(curricula=1, articles=9)
    estimate = await gate.estimate(work)
    stale = [ref() for _ in range(int(Decimal("1.00") // estimate))]
    for reference in stale:
        await gate.reserve(kind="session", reference_id=reference, work=work, client_id="c")
    with pytest.raises(BudgetExhausted):  # the day is held in full
        await gate.reserve(kind="session", reference_id=ref(), work=work, client_id="c")
    async with unit_of_work(generation_sessions) as session:
        await session.execute(
            update(BudgetAdmission)
            .where(BudgetAdmission.reference_id.in_(stale))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    await gate.reserve(kind="session", reference_id=ref(), work=work, client_id="c")
    assert (await day_row(generation_sessions, budget_day()))[2] == estimate
    async with generation_sessions() as session:
        statuses = set(
            await session.scalars(
                select(BudgetAdmission.status).where(BudgetAdmission.reference_id.in_(stale))
            )
        )
    assert statuses == {"closed"}


# ── the one-statement admission beside the job workers ───────────────────────────────────


async def test_admissions_racing_calls_that_reserve_and_settle_never_overrun_the_day(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions(client_budget_share=1.0)
    work = Workload(curricula=1, articles=2)
    estimate = await gate.estimate(work)
    first = [ref() for _ in range(2)]
    for reference in first:
        await gate.reserve(kind="session", reference_id=reference, work=work, client_id="a")
    budget = DailyBudget(generation_sessions, Decimal("1.00"), today=budget_day)

    async def call(reference: str) -> None:
        # A job worker's call: its hold, then its settle (which charges the admission).
        hold = await budget.reserve(
            estimate / 3, provider="openai", task="article", reference_id=reference
        )
        async with unit_of_work(generation_sessions) as session:
            await budget.settle(session, hold, estimate / 4)

    outcomes = await asyncio.gather(
        *(call(reference) for reference in first for _ in range(3)),
        *(
            gate.reserve(kind="session", reference_id=ref(), work=work, client_id=f"c{i % 3}")
            for i in range(int(Decimal("1.00") // estimate) + 5)
        ),
        return_exceptions=True,
    )
    assert not [
        o for o in outcomes if o is not None and not isinstance(o, Granted | BudgetExhausted)
    ]
    assert [o for o in outcomes if isinstance(o, BudgetExhausted)]
    spent, reserved, admitted = await day_row(generation_sessions, budget_day())
    assert reserved == Decimal(0)
    assert spent == 6 * budget_mod.usd(estimate / 4)
    assert spent + admitted <= Decimal("1.00")


async def test_an_admission_does_not_wait_for_a_worker_holding_the_days_budget_row(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions(client_budget_share=1.0)
    budget = DailyBudget(generation_sessions, Decimal("1.00"), today=budget_day)
    hold = await budget.reserve(Decimal("0.1"), provider="openai", task="article")
    # A worker mid-settle: the day's row locked by a transaction that has not committed.
    async with unit_of_work(generation_sessions) as worker:
        await worker.get(LLMBudgetDay, budget_day(), with_for_update=True)
        admitting = asyncio.ensure_future(
            gate.reserve(
                kind="session", reference_id=ref(), work=Workload(articles=1), client_id="c"
            )
        )
        done, _ = await asyncio.wait({admitting}, timeout=60)
        assert admitting in done, "the admission waited for the day row's lock"
        assert isinstance(admitting.result(), Granted)
        await budget.settle(worker, hold, Decimal("0.05"))


async def test_the_same_reference_asked_twice_at_once_is_one_admission(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    gate = admissions()
    reference = ref()
    granted = await asyncio.gather(
        *(
            gate.reserve(
                kind="session", reference_id=reference, work=Workload(articles=1), client_id="c"
            )
            for _ in range(4)
        )
    )
    assert len({g.admission_id for g in granted}) == 1
    async with generation_sessions() as session:
        rows = await session.scalars(
            select(BudgetAdmission.id).where(BudgetAdmission.reference_id == reference)
        )
        assert list(rows) == [granted[0].admission_id]


async def test_a_client_racing_itself_stays_within_its_share(
    admissions: Callable[..., Admissions],
    generation_sessions: async_sessionmaker[AsyncSession],
    budget_day: Callable[[], dt.date],
) -> None:
    gate = admissions(client_budget_share=0.3)
    work = Workload(curricula=1, articles=1)
    estimate = await gate.estimate(work)
    fit = int(Decimal("0.3") // estimate)
    outcomes = await asyncio.gather(
        *(
            gate.reserve(kind="session", reference_id=ref(), work=work, client_id="racer")
            for _ in range(fit + 6)
        ),
        return_exceptions=True,
    )
    assert len([o for o in outcomes if isinstance(o, Granted)]) == fit
    assert len([o for o in outcomes if isinstance(o, BudgetExhausted)]) == 6
    async with generation_sessions() as session:
        used = await repository.client_admission_usage(session, budget_day(), "racer")
    assert used == estimate * fit <= Decimal("0.3")
