"""Calls cut short are on the ledger: a cancelled call as `interrupted`, a call whose worker was
killed (kill -9) as the `started` row written before it went out — both at the estimated input,
marked `estimated`. A call that finishes completes its own row with the provider's usage."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl, FakeLLMServer
from infou_generation.budget import DailyBudget
from infou_generation.llm.router import LLMRouter, build_router
from infou_generation.llm.types import LLMRequest
from infou_generation.models import LLMCall
from infou_generation.settings import GenerationSettings

PRICES = {"openai": {"input_usd_per_token": "0.00001", "output_usd_per_token": "0.00003"}}


def make_request(session_id: str) -> LLMRequest:
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
        session_id=session_id,
    )


async def ledger_rows(sessions: async_sessionmaker[AsyncSession], session_id: str) -> list[LLMCall]:
    async with sessions() as session:
        rows = await session.scalars(
            select(LLMCall).where(LLMCall.session_id == session_id).order_by(LLMCall.id)
        )
        return list(rows)


async def until_called(
    llm: FakeLLMControl, worker: asyncio.subprocess.Process | None = None
) -> None:
    """Until the fake server has the call (or the worker process has ended)."""
    # A worker process takes a while to import on a busy machine.
    async with asyncio.timeout(90):
        while not (await llm.stats())["total"]:
            if worker is not None and worker.returncode is not None:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def router(
    llm_settings: Callable[..., GenerationSettings],
    generation_sessions: async_sessionmaker[AsyncSession],
    make_budget: Callable[..., DailyBudget],
) -> AsyncIterator[LLMRouter]:
    settings = llm_settings(
        llm_routes={"article": ["openai"]}, llm_providers=PRICES, llm_request_timeout_s=30
    )
    made = build_router(settings, generation_sessions)
    made.budget = make_budget("100")
    yield made
    await made.aclose()


async def test_a_finished_call_completes_its_own_row_with_the_reported_usage(
    router: LLMRouter, generation_sessions: async_sessionmaker[AsyncSession]
) -> None:
    sid = f"sess_{uuid.uuid4().hex[:12]}"
    result = await router.generate(make_request(sid))
    (row,) = await ledger_rows(generation_sessions, sid)
    assert (row.status, row.estimated) == ("ok", False)
    assert (row.input_tokens, row.output_tokens) == (result.input_tokens, result.output_tokens)
    assert row.cost_usd == result.cost_usd


async def test_a_cancelled_call_is_recorded_interrupted_at_its_estimate(
    router: LLMRouter,
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fake_llm.arm("timeout", times=1, hang_s=10)
    sid = f"sess_{uuid.uuid4().hex[:12]}"
    task = asyncio.create_task(router.generate(make_request(sid)))
    await until_called(fake_llm)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (row,) = await ledger_rows(generation_sessions, sid)
    assert (row.status, row.estimated, row.error) == ("interrupted", True, "CancelledError")
    assert row.input_tokens > 0
    assert row.output_tokens == 0
    assert row.cost_usd == row.input_tokens * Decimal(PRICES["openai"]["input_usd_per_token"])
    # The day's spend holds the estimate; nothing stays reserved.
    status = await router.budget.status()
    assert (status.spent_usd, status.reserved_usd) == (row.cost_usd, Decimal(0))


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from infou_generation.llm.router import build_router
    from infou_generation.llm.types import LLMRequest
    from infou_generation.models import SCHEMA
    from infou_generation.settings import GenerationSettings
    from infou_libs.db import create_engine, session_factory

    async def main() -> None:
        settings = GenerationSettings(**json.loads(sys.argv[1]))
        sessions = session_factory(create_engine(settings.database_url, SCHEMA))
        router = build_router(settings, sessions)
        request = LLMRequest(**json.loads(sys.argv[2]))
        await router.generate(request)

    asyncio.run(main())
    """
)


async def test_a_call_whose_worker_is_killed_stays_on_the_ledger_as_started(
    fake_llm_server: FakeLLMServer,
    fake_llm: FakeLLMControl,
    database_url: str,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fake_llm.arm("timeout", times=1, hang_s=30)
    sid = f"sess_{uuid.uuid4().hex[:12]}"
    settings: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "openai_api_key": "sk-test-openai",
        "openai_base_url": fake_llm_server.openai_base_url,
        "llm_routes": {"article": ["openai"]},
        "llm_providers": PRICES,
        "llm_request_timeout_s": 60,
    }
    request = make_request(sid).__dict__
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        json.dumps(settings),
        json.dumps(request),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until_called(fake_llm, worker)
        worker.send_signal(signal.SIGKILL)
    finally:
        if worker.returncode is None:
            worker.kill()
        _, stderr = await worker.communicate()
    assert worker.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    (row,) = await ledger_rows(generation_sessions, sid)
    assert (row.status, row.estimated) == ("started", True)
    assert row.input_tokens > 0
    assert row.cost_usd == row.input_tokens * Decimal(PRICES["openai"]["input_usd_per_token"])
