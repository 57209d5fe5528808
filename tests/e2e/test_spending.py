"""Spending and abuse control through the whole stack: a $1 daily budget, the fake LLM behind
the real OpenAI SDK (priced as gpt-4.1), an API key made with `infou keys`, and the default
per-client request rate (100 a minute) for anonymous clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infou_devtools import engines
from infou_devtools.fakellm import FakeLLMServer
from infou_devtools.stack import Stack
from infou_libs.db import asyncpg_url

BURST = 12
SUB_TOPICS = 3
PER_SUB_TOPIC = 5  # 15 articles + a curriculum: about $0.30 at typical gpt-4.1 usage


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str, fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("spending-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        database_name=f"infou_e2e_spend_{uuid.uuid4().hex[:8]}",
        fast_engines=True,
        extra_env={
            "INFOU_ENVIRONMENT": "test",
            "INFOU_LOG_JSON": "true",
            "INFOU_RATE_LIMIT_PER_MINUTE": "100",
            "INFOU_DAILY_BUDGET_USD": "1",
            "INFOU_OPENAI_API_KEY": "sk-fake-e2e",
            "INFOU_OPENAI_BASE_URL": fake_llm.openai_base_url,
            "INFOU_LLM_MAX_RETRIES": "0",
        },
        echo=False,
        log_file=data_dir / "stack.log",
    )
    try:
        await stack.start(ready_timeout=120)
    except Exception:
        await stack.stop()
        raise
    yield stack
    await stack.stop()
    await engines.drop_database(pg_server_url, stack.database_name)


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    """A key for a trusted backend: its own request rate and the whole budget as its share."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "infou_devtools.cli",
            "keys",
            "create",
            "--name",
            "e2e-backend",
            "--requests-per-minute",
            "10000",
            "--sessions-per-day",
            "1000",
            "--budget-share",
            "1",
        ],
        env={**os.environ, "INFOU_REDIS_URL": stack.redis_url or ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = str(json.loads(made.stdout)["api_key"])
    assert key.startswith("ik_")
    return key


async def _ledger(stack: Stack) -> dict[str, Decimal]:
    """Spend per session_id in the cost ledger."""
    assert stack.database_url is not None
    engine = create_async_engine(asyncpg_url(stack.database_url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT session_id, sum(cost_usd) FROM generation.llm_calls "
                    "WHERE session_id IS NOT NULL GROUP BY session_id"
                )
            )
            return {str(r[0]): Decimal(r[1]) for r in rows}
    finally:
        await engine.dispose()


async def test_a_burst_of_large_sessions_is_refused_at_admission_and_failures_cost_nothing(
    stack: Stack, api_key: str
) -> None:
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30.0) as api:
        topic = (await api.get("/main-topics/ai-ml", headers=headers)).json()
        body = {
            "main_topic_id": topic["id"],
            "sub_topic_ids": [s["id"] for s in topic["sub_topics"][:SUB_TOPICS]],
            "level": "beginner",
            "personalization": {"learning_goals": f"예산 {uuid.uuid4().hex[:8]}"},
            "options": {"max_articles_per_subtopic": PER_SUB_TOPIC},
        }
        # Over the per-session cap ($0.50): refused at once, naming what to change.
        too_big = await api.post(
            "/sessions",
            json={**body, "options": {"max_articles_per_subtopic": 10}},
            headers=headers,
        )
        assert too_big.status_code == 422, too_big.text
        assert too_big.json()["error"]["field"] == "options.max_articles_per_subtopic"

        replies = await asyncio.gather(
            *(api.post("/sessions", json=body, headers=headers) for _ in range(BURST))
        )
        admitted = [r.json() for r in replies if r.status_code == 201]
        refused = [r for r in replies if r.status_code != 201]
        assert admitted, [r.text for r in replies]
        assert refused, "a $1 budget cannot hold twelve $0.30 sessions"
        for reply in refused:
            assert reply.status_code == 429, reply.text
            assert reply.json()["error"]["code"] == "BUDGET_EXHAUSTED"
            assert 0 < int(reply.headers["Retry-After"]) <= 86400
        estimate = sum(Decimal(str(c["estimated_cost_usd"])) for c in admitted)
        assert estimate <= Decimal(1)

        # Every admitted session runs to its end.
        ends: dict[str, str] = {}
        deadline = time.monotonic() + 240
        while len(ends) < len(admitted) and time.monotonic() < deadline:
            for created in admitted:
                if created["session_id"] in ends:
                    continue
                got = await api.get(
                    f"/sessions/{created['session_id']}",
                    headers={**headers, "Authorization": f"Bearer {created['access_token']}"},
                )
                if got.status_code == 200 and got.json()["status"] in ("ready", "failed"):
                    ends[created["session_id"]] = got.json()["status"]
            await asyncio.sleep(1.0)
        assert len(ends) == len(admitted), ends

    spend = await _ledger(stack)
    # Refused requests created no session: every session in the ledger was admitted.
    assert set(spend) <= set(ends)
    failed_spend = sum(
        (spend.get(s, Decimal(0)) for s, e in ends.items() if e == "failed"), Decimal(0)
    )
    total = sum(spend.values(), Decimal(0))
    print(
        f"\nbudget test: {len(admitted)} admitted, {len(refused)} refused at admission, "
        f"ends {sorted(ends.values())}, spent ${total} (estimated ${estimate}), "
        f"spent on failed sessions ${failed_spend}"
    )
    assert failed_spend == 0
    assert total <= Decimal(1)


async def test_a_rotating_x_forwarded_for_burst_from_loopback_is_limited(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30.0) as api:
        codes = []
        for i in range(130):
            reply = await api.get(
                "/levels", headers={"X-Forwarded-For": f"198.51.100.{i % 250}, 10.0.0.{i % 250}"}
            )
            codes.append(reply.status_code)
    assert codes.count(429) >= 30, codes
    assert set(codes) <= {200, 429}
