"""/sessions and /articles through the gateway: the PRD shapes, status codes, tokens, bad input.

Real catalog- and session-service run in-process on a database and NATS of this module; the
test plays the generation worker (jobs from JetStream, results back as events).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.db import asyncpg_url
from infou_libs.messaging import JOBS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

REDIS_DB = 11  # this module's own database on the shared Redis

SESSION_FIELDS = {
    "session_id",
    "status",
    "created_at",
    "expires_at",
    "curriculum",
    "progress",
    "generation_info",
    "failure_reason",
    "main_topic_id",
    "sub_topic_ids",
}
ARTICLE_FIELDS = {
    "id",
    "title",
    "content",
    "level",
    "sub_topic_slug",
    "word_count",
    "estimated_read_time",
    "next_article_id",
    "previous_article_id",
    "metadata",
    "learning_elements",
    "difficulty_variants",
}


@pytest.fixture(scope="module")
async def services(module_database_url: str, module_nats_url: str) -> AsyncIterator[dict[str, int]]:
    catalog = CatalogSettings(
        environment="test", database_url=module_database_url, nats_url=module_nats_url
    )
    async with (
        running_service(CATALOG_SPEC, catalog) as catalog_port,
        running_service(
            GENERATION_API_SPEC,
            GenerationSettings(
                environment="test",
                database_url=module_database_url,
                nats_url=module_nats_url,
                catalog_addr=f"127.0.0.1:{catalog_port}",
                # A priced provider, so admissions estimate real money (no call is made here).
                local_llm_base_url="http://127.0.0.1:9/v1",
            ),
        ) as generation_port,
    ):
        session = SessionSettings(
            environment="test",
            database_url=module_database_url,
            nats_url=module_nats_url,
            catalog_addr=f"127.0.0.1:{catalog_port}",
            generation_addr=f"127.0.0.1:{generation_port}",
        )
        async with running_service(SESSION_SPEC, session) as session_port:
            yield {"catalog": catalog_port, "session": session_port}


@pytest.fixture(scope="module")
async def api(
    services: dict[str, int], module_database_url: str, module_nats_url: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        catalog_addr=f"127.0.0.1:{services['catalog']}",
        session_addr=f"127.0.0.1:{services['session']}",
        rate_limit_per_minute=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


@pytest.fixture(scope="module")
async def js(module_nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc: NatsClient = await connect(module_nats_url, "gateway-session-tests")
    js = nc.jetstream()
    await ensure_streams(js)
    yield js
    await nc.close()


@pytest.fixture(scope="module")
async def jobs(js: JetStreamContext) -> AsyncIterator[JetStreamContext.PullSubscription]:
    sub = await js.pull_subscribe(
        "jobs.>", durable="gw-test-worker", stream=JOBS_STREAM, config=ConsumerConfig(ack_wait=30)
    )
    yield sub
    await sub.unsubscribe()


@pytest.fixture(scope="module")
async def topic(api: httpx.AsyncClient) -> dict[str, Any]:
    reply = await api.get("/main-topics/ai-ml")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def take_jobs(
    sub: JetStreamContext.PullSubscription, subject: str, count: int
) -> list[dict[str, Any]]:
    """`count` jobs on `subject` (acked), decoded with their context."""
    kinds: dict[str, Any] = {
        "jobs.curriculum.generate": events_pb2.GenerateCurriculumJob,
        "jobs.article.generate": events_pb2.GenerateArticleJob,
        "jobs.article.convert": events_pb2.ConvertArticleJob,
    }
    found: list[dict[str, Any]] = []
    for _ in range(60):
        try:
            msgs = await sub.fetch(10, timeout=0.5)
        except (TimeoutError, NatsTimeoutError):
            msgs = []
        for msg in msgs:
            await msg.ack()
            if msg.subject == subject:
                job = kinds[subject].FromString(msg.data)
                found.append(
                    {
                        "session_id": job.session_id,
                        "article_id": getattr(job, "article_id", ""),
                        "task_id": getattr(job, "task_id", ""),
                        "context": json.loads(job.context_json),
                    }
                )
        if len(found) >= count:
            return found
    raise AssertionError(f"only {len(found)} of {count} jobs on {subject}")


QUALITY_REPORT = {
    "score": 0.9,
    "passed": True,
    "judged": True,
    "threshold": 0.7,
    "warnings": ["missing_analogies"],
    "level_fit": [],
    "checks": {"word_count": 480.0},
}


def written(title: str, level: str) -> events_pb2.WrittenArticle:
    body = {"title": title, "sections": [{"heading": "본문", "body": f"{title} ({level})"}]}
    return events_pb2.WrittenArticle(
        article_json=json.dumps(body, ensure_ascii=False),
        content=f"## 본문\n\n{title} ({level})\n",
        word_count=480,
        estimated_read_time="3-4분",
        quality_score=0.9,
        quality_report_json=json.dumps(QUALITY_REPORT),
        title=title,
        key_terms=["API"],
        code_examples=2,
        practical_tips=["API 키 보안"],
        related_concepts=["JSON"],
    )


def usage(tokens: int = 500) -> events_pb2.GenerationUsage:
    return events_pb2.GenerationUsage(
        model="gpt-test",
        provider="openai",
        input_tokens=tokens // 5,
        output_tokens=tokens - tokens // 5,
        cost_usd=0.012345,  # the ledger's precision: 6 decimals, kept end to end
        prompt_excerpt="[infou_article · prompt v]",
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_session(
    api: httpx.AsyncClient, topic: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    body = {
        "main_topic_id": topic["id"],
        "sub_topic_ids": [topic["sub_topics"][0]["id"]],
        "level": "intermediate",
        "personalization": {"learning_pace": "regular", "include_examples": True},
        "options": {"max_articles_per_subtopic": 2},
    } | extra
    reply = await api.post("/sessions", json=body)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def ready_session(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> dict[str, Any]:
    """A session driven to ready with two articles."""
    created = await new_session(api, topic)
    sid = created["session_id"]
    await take_jobs(jobs, "jobs.curriculum.generate", 1)
    ref = topic["sub_topics"][0]["id"]
    items = [
        events_pb2.PlannedArticle(
            title=title,
            summary=f"{title} 요약",
            sub_topic_ref=ref,
            key_concepts=["a"],
            estimated_read_time="3-4분",
            difficulty_indicators=["실습 위주"],
        )
        for title in ("ChatGPT API 기본 설정", "응답 다루기")
    ]
    await publish(
        js,
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(
            session_id=sid, title="API 자동화", items=items, usage=usage()
        ),
    )
    for job in await take_jobs(jobs, "jobs.article.generate", 2):
        if job["session_id"] != sid:
            continue
        title = job["context"]["outline"]["title"]
        await publish(
            js,
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(
                session_id=sid,
                article_id=job["article_id"],
                article=written(title, "intermediate"),
                usage=usage(),
            ),
        )
    for _ in range(200):
        body = (await api.get(f"/sessions/{sid}", headers=auth(created["access_token"]))).json()
        if body["status"] == "ready":
            return created
        await asyncio.sleep(0.05)
    raise AssertionError(f"session not ready: {body}")


# ── POST /sessions ─────────────────────────────────────────────────────────────────────


async def test_create_answers_201_with_the_prd_fields(
    api: httpx.AsyncClient, topic: dict[str, Any]
) -> None:
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [s["id"] for s in topic["sub_topics"][:2]],
            "level": "intermediate",
            "personalization": {
                "learning_pace": "regular",
                "preferred_article_length": "medium",
                "include_examples": True,
            },
            "options": {
                "max_articles_per_subtopic": 7,
                "enable_adaptive_difficulty": True,
                "include_practice_problems": False,
            },
        },
        headers={"Host": "learn.example.org:8443"},
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    sid = body["session_id"]
    assert sid.startswith("sess_")
    assert body["status"] == "initializing"
    assert body["estimated_total_time"] == "3-4주"  # 14 articles at 4 a week
    assert body["websocket_url"] == f"ws://learn.example.org:8443/sessions/{sid}/ws"
    assert body["access_token"].startswith("st_")
    assert body["token_type"] == "Bearer"
    assert body["estimated_cost_usd"] > 0
    assert body["estimated_articles"] == 14
    assert body["expires_at"].endswith("Z")


async def test_a_client_gets_its_days_sessions_and_replays_do_not_count(
    services: dict[str, int],
    module_database_url: str,
    module_nats_url: str,
    redis_url: str,
    topic: dict[str, Any],
) -> None:
    settings = GatewaySettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        catalog_addr=f"127.0.0.1:{services['catalog']}",
        session_addr=f"127.0.0.1:{services['session']}",
        rate_limit_per_minute=0,
        sessions_per_client_per_day=2,
    )
    body = {
        "main_topic_id": topic["id"],
        "sub_topic_ids": [topic["sub_topics"][0]["id"]],
        "level": "beginner",
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    app = create_app(settings)
    peer = (f"2001:db8:{uuid.uuid4().hex[:4]}::7", 5000)  # a client of its own
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            first = await client.post("/sessions", json=body, headers=key)
            replay = await client.post("/sessions", json=body, headers=key)
            reused = await client.post("/sessions", json={**body, "level": "advanced"}, headers=key)
            second = await client.post("/sessions", json=body)
            third = await client.post("/sessions", json=body)
    assert [r.status_code for r in (first, replay, second, third)] == [201, 201, 201, 429]
    assert replay.json()["session_id"] == first.json()["session_id"]
    assert replay.json()["access_token"] == first.json()["access_token"]
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert reused.json()["error"]["field"] == "Idempotency-Key"
    assert third.json()["error"]["code"] == "DAILY_QUOTA_EXCEEDED"
    assert int(third.headers["Retry-After"]) > 0


async def test_websocket_url_is_wss_behind_https(
    api: httpx.AsyncClient, topic: dict[str, Any]
) -> None:
    transport = api._transport  # the same app, reached over https
    async with httpx.AsyncClient(transport=transport, base_url="https://secure.test") as client:
        body = await new_session(client, topic)
    assert body["websocket_url"].startswith("wss://secure.test/sessions/")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"main_topic_id": 999999}, "main_topic_id"),
        ({"main_topic_id": 0}, "main_topic_id"),
        ({"main_topic_id": "one"}, "main_topic_id"),
        ({"sub_topic_ids": []}, "sub_topic_ids"),
        ({"sub_topic_ids": ["curated_999999"]}, "sub_topic_ids.0"),
        ({"sub_topic_ids": ["first", "bogus_1"]}, "sub_topic_ids.1"),
        ({"sub_topic_ids": ["curated_x"]}, "sub_topic_ids.0"),
        ({"sub_topic_ids": ["first", "first"]}, "sub_topic_ids.1"),
        ({"sub_topic_ids": "curated_1"}, "sub_topic_ids"),
        ({"level": "wizard"}, "level"),
        ({"options": {"max_articles_per_subtopic": 0}}, "options.max_articles_per_subtopic"),
        ({"options": {"max_articles_per_subtopic": 21}}, "options.max_articles_per_subtopic"),
        ({"personalization": {"learning_pace": "warp"}}, "personalization.learning_pace"),
        (
            {"personalization": {"preferred_article_length": "epic"}},
            "personalization.preferred_article_length",
        ),
        ({"personalization": {"interests": ["x"] * 11}}, "personalization.interests"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    api: httpx.AsyncClient, topic: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        "main_topic_id": topic["id"],
        "sub_topic_ids": [topic["sub_topics"][0]["id"]],
        "level": "beginner",
    } | change
    if isinstance(body["sub_topic_ids"], list):
        body["sub_topic_ids"] = [
            topic["sub_topics"][0]["id"] if s == "first" else s for s in body["sub_topic_ids"]
        ]
    reply = await api.post("/sessions", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


async def test_a_curated_sub_topic_of_another_topic_is_refused(
    api: httpx.AsyncClient, topic: dict[str, Any]
) -> None:
    other = (await api.get("/main-topics", params={"limit": 2})).json()["items"]
    other_slug = next(t["slug"] for t in other if t["id"] != topic["id"])
    foreign = (await api.get(f"/main-topics/{other_slug}")).json()["sub_topics"][0]["id"]
    reply = await api.post(
        "/sessions",
        json={"main_topic_id": topic["id"], "sub_topic_ids": [foreign], "level": "beginner"},
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "sub_topic_ids.0"


# ── reading ────────────────────────────────────────────────────────────────────────────


async def test_status_curriculum_and_articles_follow_the_prd(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> None:
    created = await new_session(api, topic)
    sid, token = created["session_id"], created["access_token"]

    reply = await api.get(f"/sessions/{sid}", headers=auth(token))
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == SESSION_FIELDS
    assert body["status"] == "initializing"
    assert body["progress"] == {
        "current_article_id": None,
        "completion_percentage": 0.0,
        "time_spent": "0분",
        "last_accessed": None,
    }
    assert body["generation_info"]["total_tokens_used"] == 0

    reply = await api.get(f"/sessions/{sid}/curriculum", headers=auth(token))
    assert reply.status_code == 202
    assert reply.json()["ready"] is False
    assert reply.json()["items"] == []

    await take_jobs(jobs, "jobs.curriculum.generate", 1)
    ref = topic["sub_topics"][0]["id"]
    await publish(
        js,
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(
            session_id=sid,
            title="인공지능 실무 활용 중급",
            items=[
                events_pb2.PlannedArticle(
                    title="ChatGPT API 기본 설정",
                    summary="API 키 발급부터 첫 호출까지",
                    sub_topic_ref=ref,
                    estimated_read_time="3-4분",
                    key_concepts=["API 인증", "기본 파라미터", "에러 처리"],
                    difficulty_indicators=["코드 예제 포함", "실습 위주"],
                ),
                events_pb2.PlannedArticle(
                    title="둘째", summary="s", sub_topic_ref=ref, key_concepts=["x"]
                ),
            ],
            usage=usage(1000),
        ),
    )
    for _ in range(200):
        reply = await api.get(f"/sessions/{sid}/curriculum", headers=auth(token))
        if reply.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert reply.status_code == 200, reply.text
    curriculum = reply.json()
    assert curriculum["title"] == "인공지능 실무 활용 중급"
    assert curriculum["level"] == "intermediate"
    first = curriculum["items"][0]
    assert first == {
        "id": f"{sid}_001",
        "order": 1,
        "title": "ChatGPT API 기본 설정",
        "summary": "API 키 발급부터 첫 호출까지",
        "sub_topic": topic["sub_topics"][0]["name"],
        "sub_topic_id": ref,
        "estimated_read_time": "3-4분",
        "key_concepts": ["API 인증", "기본 파라미터", "에러 처리"],
        "is_generated": True,
        "difficulty_indicators": ["코드 예제 포함", "실습 위주"],
        "prerequisites": [],
        "status": "generating",
        "content_ready": False,
    }

    pending = await api.get(f"/articles/{sid}_001", headers=auth(token))
    assert pending.status_code == 202
    assert pending.json()["status"] == "generating"
    assert pending.json()["title"] == "ChatGPT API 기본 설정"

    for job in await take_jobs(jobs, "jobs.article.generate", 2):
        await publish(
            js,
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(
                session_id=sid,
                article_id=job["article_id"],
                article=written(job["context"]["outline"]["title"], "intermediate"),
                usage=usage(),
            ),
        )
    for _ in range(200):
        session = (await api.get(f"/sessions/{sid}", headers=auth(token))).json()
        if session["status"] == "ready":
            break
        await asyncio.sleep(0.05)
    assert session["status"] == "ready"
    assert session["curriculum"]["total_articles"] == 2
    assert session["curriculum"]["generated_articles"] == 2
    assert session["progress"]["current_article_id"] == f"{sid}_001"
    assert session["generation_info"]["total_tokens_used"] == 2000
    assert session["generation_info"]["llm_model"] == "gpt-test"
    assert session["generation_info"]["cost"] == 0.037035  # 3 × 0.012345, not rounded to 4
    assert session["generation_info"]["saved_cost"] == 0  # nothing came from the cache

    article = await api.get(
        f"/articles/{sid}_001", params={"level": "intermediate"}, headers=auth(token)
    )
    assert article.status_code == 200, article.text
    body = article.json()
    assert set(body) >= ARTICLE_FIELDS
    assert body["content"] == "## 본문\n\nChatGPT API 기본 설정 (intermediate)\n"
    assert body["word_count"] == 480
    assert body["next_article_id"] == f"{sid}_002"
    assert body["previous_article_id"] is None
    assert body["metadata"]["llm_model"] == "gpt-test"
    assert body["metadata"]["offline"] is False
    assert body["metadata"]["human_reviewed"] is False
    assert body["metadata"]["quality"] == QUALITY_REPORT
    assert body["metadata"]["generated_at"].endswith("Z")
    assert body["learning_elements"] == {
        "key_terms": ["API"],
        "code_examples": 2,
        "practical_tips": ["API 키 보안"],
        "related_concepts": ["JSON"],
    }
    assert body["difficulty_variants"] == {
        "available_levels": ["intermediate"],
        "current_level": "intermediate",
    }
    # Reading is not progress: POST /sessions/{id}/progress (feedback) moves it.
    session = (await api.get(f"/sessions/{sid}", headers=auth(token))).json()
    assert session["progress"]["last_accessed"] is None


async def test_convert_then_read_the_variant(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> None:
    created = await ready_session(api, js, jobs, topic)
    sid, headers = created["session_id"], auth(created["access_token"])
    article_id = f"{sid}_001"

    same = await api.get(
        f"/articles/{article_id}/convert", params={"target_level": "intermediate"}, headers=headers
    )
    assert same.status_code == 200
    assert same.json()["level"] == "intermediate"

    missing = await api.get(
        f"/articles/{article_id}", params={"level": "beginner"}, headers=headers
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "level"

    accepted = await api.get(
        f"/articles/{article_id}/convert", params={"target_level": "beginner"}, headers=headers
    )
    assert accepted.status_code == 202
    task = accepted.json()
    assert task["status"] == "processing"
    assert task["task_id"].startswith("conv_")
    assert (task["article_id"], task["target_level"]) == (article_id, "beginner")

    waiting = await api.get(
        f"/articles/{article_id}", params={"level": "beginner"}, headers=headers
    )
    assert waiting.status_code == 202

    [job] = await take_jobs(jobs, "jobs.article.convert", 1)
    assert job["task_id"] == task["task_id"]
    await publish(
        js,
        "events.generation.article_converted",
        events_pb2.ArticleConverted(
            session_id=sid,
            article_id=article_id,
            target_level="beginner",
            task_id=job["task_id"],
            article=written("쉬운 설명", "beginner"),
            usage=usage(),
        ),
    )
    for _ in range(200):
        variant = await api.get(
            f"/articles/{article_id}", params={"level": "beginner"}, headers=headers
        )
        if variant.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert variant.status_code == 200, variant.text
    body = variant.json()
    assert body["level"] == "beginner"
    assert "(beginner)" in body["content"]
    assert body["base_article_id"] == article_id
    assert body["difficulty_variants"] == {
        "available_levels": ["beginner", "intermediate"],
        "current_level": "beginner",
    }
    cached = await api.get(
        f"/articles/{article_id}/convert", params={"target_level": "beginner"}, headers=headers
    )
    assert cached.status_code == 200
    assert cached.json()["content"] == body["content"]


async def test_retry_of_a_healthy_session_is_a_conflict(
    api: httpx.AsyncClient, topic: dict[str, Any]
) -> None:
    created = await new_session(api, topic)
    reply = await api.post(
        f"/sessions/{created['session_id']}/retry", headers=auth(created["access_token"])
    )
    assert reply.status_code == 409
    assert reply.json()["error"]["code"] == "NOT_RETRYABLE"


async def test_a_failed_article_is_409_until_retried(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> None:
    created = await new_session(api, topic)
    sid, headers = created["session_id"], auth(created["access_token"])
    await take_jobs(jobs, "jobs.curriculum.generate", 1)
    await publish(
        js,
        "events.generation.task_failed",
        events_pb2.GenerationFailed(
            session_id=sid, task="curriculum", error_code="GENERATION_FAILED", message="boom"
        ),
    )
    for _ in range(200):
        body = (await api.get(f"/sessions/{sid}", headers=headers)).json()
        if body["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "failed"
    assert "boom" in body["failure_reason"]
    retried = await api.post(f"/sessions/{sid}/retry", headers=headers)
    assert retried.status_code == 202
    assert retried.json()["status"] == "initializing"
    assert retried.json()["failure_reason"] is None
    await take_jobs(jobs, "jobs.curriculum.generate", 1)


# ── access ─────────────────────────────────────────────────────────────────────────────


async def test_tokens_guard_every_endpoint(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> None:
    mine = await ready_session(api, js, jobs, topic)
    theirs = await new_session(api, topic)
    sid = mine["session_id"]
    calls = [
        ("GET", f"/sessions/{sid}", {}),
        ("GET", f"/sessions/{sid}/curriculum", {}),
        ("POST", f"/sessions/{sid}/retry", {}),
        ("GET", f"/articles/{sid}_001", {}),
        ("GET", f"/articles/{sid}_001/convert", {"target_level": "beginner"}),
    ]
    for method, path, params in calls:
        for headers, expected in (
            ({}, 401),
            ({"Authorization": "Bearer st_" + "A" * 43}, 401),
            ({"Authorization": mine["access_token"]}, 401),  # no scheme
            ({"Authorization": f"Basic {mine['access_token']}"}, 401),
            (auth(theirs["access_token"]), 404),
        ):
            reply = await api.request(method, path, params=params, headers=headers)
            assert reply.status_code == expected, (method, path, headers, reply.text)
            assert reply.json()["error"]["code"] in ("UNAUTHENTICATED", "NOT_FOUND")
        ok = await api.request(method, path, params=params, headers=auth(mine["access_token"]))
        assert ok.status_code in (200, 202, 409), (path, ok.text)
    # Another session's token never reveals whether an id exists.
    ghost = await api.get("/sessions/sess_does_not_exist", headers=auth(theirs["access_token"]))
    assert ghost.status_code == 404


async def test_cached_reads_keep_every_token_rule_and_hold_no_plaintext(
    api: httpx.AsyncClient,
    js: JetStreamContext,
    jobs: Any,
    topic: dict[str, Any],
    redis_url: str,
) -> None:
    mine = await ready_session(api, js, jobs, topic)
    theirs = await new_session(api, topic)
    sid, token = mine["session_id"], mine["access_token"]
    paths = [f"/sessions/{sid}", f"/sessions/{sid}/curriculum", f"/articles/{sid}_001"]
    first = {path: await api.get(path, headers=auth(token)) for path in paths}
    # Read again (now from the cache), then with every token that must not open it.
    for path in paths:
        again = await api.get(path, headers=auth(token))
        assert again.status_code == 200
        assert again.json() == first[path].json()
        for headers, expected in (
            ({}, 401),
            ({"Authorization": "Bearer st_" + "A" * 43}, 401),
            ({"Authorization": f"Bearer {token}x"}, 401),
            (auth(theirs["access_token"]), 404),
        ):
            reply = await api.get(path, headers=headers)
            assert reply.status_code == expected, (path, headers, reply.text)
    redis = Redis.from_url(urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")))
    try:
        found = [*await redis.keys(f"sess:{sid}:*"), *await redis.keys(f"art:{sid}_*")]
        names = [k if isinstance(k, bytes) else k.encode() for k in found]
        keys = {k.decode(): await redis.get(k) for k in names if not k.endswith(b":keys:v1")}
    finally:
        await redis.aclose()
    assert set(keys) == {
        f"sess:{sid}:status:v1",
        f"sess:{sid}:curriculum:v1",
        f"art:{sid}_001:default:v1",
    }
    title = first[paths[2]].json()["title"].encode()
    for raw in keys.values():
        assert raw is not None
        assert token.encode() not in raw  # only a hash of the token
        assert title not in raw  # the body is ciphertext
        assert b"session_id" not in raw


def memory_reads() -> float:
    """GETs answered from memory before routing (memory_reads.py)."""
    return REGISTRY.get_sample_value("infou_http_memory_reads_total") or 0.0


async def test_reads_held_in_memory_are_the_stacks_answers_for_their_token_only(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, topic: dict[str, Any]
) -> None:
    mine = await ready_session(api, js, jobs, topic)
    theirs = await new_session(api, topic)
    sid, token = mine["session_id"], mine["access_token"]
    paths = [
        f"/sessions/{sid}",
        f"/sessions/{sid}/curriculum",
        f"/articles/{sid}_001",
        f"/articles/{sid}_001?level=intermediate",
    ]
    for path in paths:
        stack = await api.get(path, headers=auth(token))  # kept in memory by this one
        before = memory_reads()
        memory = await api.get(path, headers=auth(token))
        assert memory_reads() == before + 1, path
        assert (memory.status_code, memory.content) == (200, stack.content)
        assert memory.headers.raw == stack.headers.raw
        assert memory.headers["cache-control"] == "no-store"
        # Any other token goes on to session-service, which refuses it.
        for headers, expected in (
            ({}, 401),
            ({"Authorization": "Bearer st_" + "A" * 43}, 401),
            ({"Authorization": f"Bearer {token}x"}, 401),
            ({"Authorization": token}, 401),  # no scheme
            (auth(theirs["access_token"]), 404),
        ):
            reply = await api.get(path, headers=headers)
            assert reply.status_code == expected, (path, headers, reply.text)
        assert memory_reads() == before + 1, path


async def test_a_progress_message_drops_the_cached_session_read(
    api: httpx.AsyncClient, topic: dict[str, Any], module_database_url: str, module_nats_url: str
) -> None:
    created = await new_session(api, topic)
    sid, token = created["session_id"], created["access_token"]
    # Read until the read is held (the creation's own progress message may drop the first).
    for _ in range(200):
        held = memory_reads()
        assert (await api.get(f"/sessions/{sid}", headers=auth(token))).json()[
            "failure_reason"
        ] is None
        if memory_reads() > held:
            break
        await asyncio.sleep(0.05)
    engine = create_async_engine(asyncpg_url(module_database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE session.learning_sessions SET failure_reason = 'moved' WHERE id = :id"
                ),
                {"id": sid},
            )
    finally:
        await engine.dispose()
    # No message announced the change: the read is still the cached one.
    cached = (await api.get(f"/sessions/{sid}", headers=auth(token))).json()
    assert cached["failure_reason"] is None
    progress = events_pb2.SessionProgress(session_id=sid, type="generation_progress")
    nc = await connect(module_nats_url, "gateway-progress-test")
    try:
        # Published again on each poll: on a loaded machine the gateway's subscription may be
        # between reconnects when one core-NATS message passes. The whole loop stays well
        # inside the 30 s cache TTL, so only the message can make the new value show.
        for _ in range(100):
            await nc.publish(f"progress.session.{sid}", progress.SerializeToString())
            await nc.flush()
            await asyncio.sleep(0.05)
            before = memory_reads()
            body = (await api.get(f"/sessions/{sid}", headers=auth(token))).json()
            if body["failure_reason"] == "moved":
                break
    finally:
        await nc.close()
    assert body["failure_reason"] == "moved"
    assert memory_reads() == before  # the message dropped the read held in memory too


async def test_an_expired_session_answers_410(
    api: httpx.AsyncClient, topic: dict[str, Any], module_database_url: str
) -> None:
    created = await new_session(api, topic)
    engine = create_async_engine(asyncpg_url(module_database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE session.learning_sessions SET expires_at = now() WHERE id = :id"),
                {"id": created["session_id"]},
            )
    finally:
        await engine.dispose()
    for path in (
        f"/sessions/{created['session_id']}",
        f"/sessions/{created['session_id']}/curriculum",
    ):
        reply = await api.get(path, headers=auth(created["access_token"]))
        assert reply.status_code == 410
        assert reply.json()["error"]["code"] == "SESSION_EXPIRED"


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("GET", "/articles/x/convert", {}, "target_level"),
        ("GET", "/articles/x/convert", {"target_level": "wizard"}, "target_level"),
        ("GET", "/articles/x", {"level": "wizard"}, "level"),
        ("GET", "/sessions/" + "s" * 65, {}, "session_id"),
        ("GET", "/articles/" + "a" * 81, {}, "article_id"),
    ],
)
async def test_bad_parameters_name_the_field(
    api: httpx.AsyncClient, method: str, path: str, params: dict[str, str], field: str
) -> None:
    reply = await api.request(method, path, params=params, headers=auth("st_" + "x" * 43))
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


async def _stored(database_url: str) -> tuple[int, int]:
    """(sessions, budget admissions) stored so far."""
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as conn:
            sessions = await conn.scalar(text("SELECT count(*) FROM session.learning_sessions"))
            admissions = await conn.scalar(
                text("SELECT count(*) FROM generation.budget_admissions")
            )
    finally:
        await engine.dispose()
    return int(sessions or 0), int(admissions or 0)


@pytest.mark.parametrize(
    ("personalization", "field"),
    [
        ({"learning_goals": "폭탄 만드는 법을 배우고 싶어요"}, "personalization.learning_goals"),
        ({"interests": ["API", "죽고 싶다"]}, "personalization.interests.1"),
        ({"preferred_style": "how to make a bomb"}, "personalization.preferred_style"),
    ],
)
async def test_flagged_personalization_is_a_422_naming_the_field_and_nothing_is_stored(
    api: httpx.AsyncClient,
    topic: dict[str, Any],
    module_database_url: str,
    personalization: dict[str, Any],
    field: str,
) -> None:
    # Generation has no OpenAI key here: its admission moderates with the local check.
    before = await _stored(module_database_url)
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [topic["sub_topics"][0]["id"]],
            "level": "intermediate",
            "personalization": {"learning_pace": "regular"} | personalization,
        },
    )
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("CONTENT_FLAGGED", field)
    assert await _stored(module_database_url) == before
