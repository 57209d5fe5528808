"""A generation worker killed mid-job: JetStream redelivers the job to the restarted worker and
the generation completes exactly once.

A stack of its own (own database, NATS and Valkey) whose generation-service talks to the fake
LLM server through the real OpenAI SDK, slowed down so that the job is surely in flight when
the worker dies, and with a short ack wait so that the redelivery comes soon.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infou_devtools import engines
from infou_devtools.fakellm import FakeLLMControl, FakeLLMServer
from infou_devtools.stack import Stack
from infou_libs.db import asyncpg_url

TTFT_MS = 4000
ACK_WAIT_S = 3


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
async def slow_stack(
    pg_server_url: str, fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("slow-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        database_name=f"infou_e2e_kill_{uuid.uuid4().hex[:8]}",
        fast_engines=True,
        extra_env={
            "INFOU_ENVIRONMENT": "test",
            "INFOU_LOG_JSON": "true",
            "INFOU_RATE_LIMIT_PER_MINUTE": "0",
            "INFOU_OPENAI_API_KEY": "sk-fake-e2e",
            "INFOU_OPENAI_BASE_URL": fake_llm.openai_base_url,
            "INFOU_LLM_EXTRA_HEADERS": json.dumps({"x-fake-ttft-ms": str(TTFT_MS)}),
            "INFOU_JOBS_ACK_WAIT_SECONDS": str(ACK_WAIT_S),
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
async def db(slow_stack: Stack) -> AsyncIterator[AsyncEngine]:
    assert slow_stack.database_url is not None
    engine = create_async_engine(asyncpg_url(slow_stack.database_url))
    yield engine
    await engine.dispose()


async def scalar(db: AsyncEngine, sql: str, **params: Any) -> Any:
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_finishes_once(
    slow_stack: Stack, fake_llm: FakeLLMServer, db: AsyncEngine
) -> None:
    control = FakeLLMControl(fake_llm.url)
    await control.reset()
    async with httpx.AsyncClient(base_url=slow_stack.gateway_url, timeout=15) as api:
        topic = (await api.get("/main-topics/ai-ml")).json()
        generated_before = topic["subtopic_count"]["generated"]
        reply = await api.post(
            "/sub-topics/generate",
            json={
                "main_topic_id": topic["id"],
                "personalization": {"interests": ["automation"], "current_level": "beginner"},
                "options": {"max_subtopics": 3},
            },
        )
        assert reply.status_code == 202, reply.text
        generation_id = reply.json()["generation_id"]

        # The worker has taken the job and is waiting for the model's first token.
        async def in_flight() -> bool:
            return bool((await control.stats())["total"] >= 1)

        await wait_for(in_flight, 30, "the worker never called the LLM")
        status = await scalar(
            db,
            "SELECT status FROM generation.subtopic_generation_requests "
            "WHERE generation_batch_id = :id",
            id=generation_id,
        )
        assert status == "processing"
        await slow_stack.kill("generation", signal.SIGKILL)

        # The supervisor restarts the service; JetStream hands the un-acked job to it.
        await slow_stack.wait_healthy(timeout=90)

        async def done() -> bool:
            reply = await api.get(f"/sub-topics/generated/{generation_id}")
            return reply.status_code == 200 and reply.json()["status"] != "processing"

        await wait_for(done, 90, "the redelivered job did not finish")
        result = (await api.get(f"/sub-topics/generated/{generation_id}")).json()
        assert result["status"] == "completed", result
        assert len(result["items"]) == 3

        rows = await scalar(
            db,
            "SELECT count(*) FROM generation.generated_sub_topics WHERE generation_batch_id = :id",
            id=generation_id,
        )
        assert rows == 3
        attempts = await scalar(
            db,
            "SELECT attempts FROM generation.subtopic_generation_requests "
            "WHERE generation_batch_id = :id",
            id=generation_id,
        )
        assert attempts == 2  # the killed delivery and the redelivery
        events = await scalar(
            db,
            "SELECT count(*) FROM generation.outbox WHERE event_id = :event_id",
            event_id=f"subtopics-generated-{generation_id}",
        )
        assert events == 1
        assert (await control.stats())["total"] == 2  # one call lost with the worker, one kept

        # catalog counted the batch once.
        async def counted() -> bool:
            detail = (await api.get("/main-topics/ai-ml")).json()
            return bool(detail["subtopic_count"]["generated"] == generated_before + 3)

        await wait_for(counted, 30, "catalog did not count the generated sub-topics")
        await asyncio.sleep(1.0)
        detail = (await api.get("/main-topics/ai-ml")).json()
        assert detail["subtopic_count"]["generated"] == generated_before + 3
        assert slow_stack.children["generation"].restarts >= 1


async def test_a_worker_terminated_mid_job_finishes_it_before_leaving(
    slow_stack: Stack, fake_llm: FakeLLMServer, db: AsyncEngine
) -> None:
    """SIGTERM (a rollout, a scale-down) drains: the job in hand completes once, no call wasted."""
    await slow_stack.wait_healthy(timeout=90)
    control = FakeLLMControl(fake_llm.url)
    await control.reset()
    async with httpx.AsyncClient(base_url=slow_stack.gateway_url, timeout=15) as api:
        topic = (await api.get("/main-topics/ai-ml")).json()
        reply = await api.post(
            "/sub-topics/generate",
            json={
                "main_topic_id": topic["id"],
                "personalization": {"interests": ["drain"], "current_level": "beginner"},
                "options": {"max_subtopics": 3},
            },
        )
        assert reply.status_code == 202, reply.text
        generation_id = reply.json()["generation_id"]

        async def in_flight() -> bool:
            return bool((await control.stats())["total"] >= 1)

        await wait_for(in_flight, 30, "the worker never called the LLM")
        # Returns once the process has exited: after it finished the job it held.
        await slow_stack.kill("generation", signal.SIGTERM)
        await slow_stack.wait_healthy(timeout=90)  # the supervisor brings the service back

        result = (await api.get(f"/sub-topics/generated/{generation_id}")).json()
        assert result["status"] == "completed", result
        assert len(result["items"]) == 3
        attempts = await scalar(
            db,
            "SELECT attempts FROM generation.subtopic_generation_requests "
            "WHERE generation_batch_id = :id",
            id=generation_id,
        )
        assert attempts == 1  # finished by the worker that took it, never redelivered
        events = await scalar(
            db,
            "SELECT count(*) FROM generation.outbox WHERE event_id = :event_id",
            event_id=f"subtopics-generated-{generation_id}",
        )
        assert events == 1
        assert (await control.stats())["total"] == 1  # no LLM call wasted
