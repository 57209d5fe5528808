"""The cost ledger on real Postgres: rows as written, totals per session and generation."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import ledger
from infou_generation.ledger import LedgerEntry
from infou_generation.models import LLMCall
from infou_libs.db import unit_of_work


async def test_rows_keep_what_each_call_cost_and_add_up(
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = f"sess_{uuid.uuid4().hex[:8]}"
    entries = [
        LedgerEntry("openai", "gpt-4.1", "article", "rate_limited", session_id=session_id),
        LedgerEntry(
            "openai",
            "gpt-4.1",
            "article",
            "ok",
            1200,
            800,
            200,
            Decimal("0.008900"),
            2300,
            attempt=2,
            session_id=session_id,
            generation_id="gen_1",
        ),
        LedgerEntry(
            "anthropic",
            "claude-sonnet-4-5",
            "article",
            "invalid_output",
            1000,
            50,
            0,
            Decimal("0.003750"),
            900,
            error="not valid JSON",
            session_id=session_id,
        ),
    ]
    async with unit_of_work(generation_sessions) as session:
        for entry in entries:
            await ledger.record(session, entry)
    async with generation_sessions() as session:
        rows = (
            await session.scalars(
                select(LLMCall).where(LLMCall.session_id == session_id).order_by(LLMCall.id)
            )
        ).all()
        totals = await ledger.totals(session, session_id=session_id)
    assert [r.status for r in rows] == ["rate_limited", "ok", "invalid_output"]
    assert rows[1].cost_usd == Decimal("0.008900")
    assert (rows[1].attempt, rows[1].cached_tokens, rows[1].generation_id) == (2, 200, "gen_1")
    assert rows[2].error == "not valid JSON"
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (3, 2200, 850)
    assert totals.cost_usd == Decimal("0.012650")


async def test_an_unknown_status_is_refused_by_the_database(
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    entry = LedgerEntry("openai", "gpt-4.1", "article", "ok")
    bad = LedgerEntry(**{**entry.__dict__, "status": "maybe"})
    with pytest.raises(IntegrityError):
        async with unit_of_work(generation_sessions) as session:
            await ledger.record(session, bad)


async def test_totals_need_a_scope(generation_sessions: async_sessionmaker[AsyncSession]) -> None:
    async with generation_sessions() as session:
        with pytest.raises(ValueError, match="session_id or a generation_id"):
            await ledger.totals(session)
