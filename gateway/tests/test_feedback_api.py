"""POST /articles/{id}/feedback, POST /sessions/{id}/progress, GET /sessions/{id}/analytics
through the gateway: PRD shapes, 201s, tokens, and every bad field named.

Real catalog-, session- and feedback-services run in-process on a database and NATS of this
module; the test plays the generation worker so that sessions have written articles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_feedback.main import SPEC as FEEDBACK_SPEC
from infou_feedback.settings import FeedbackSettings
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.messaging import JOBS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

REDIS_DB = 12  # this module's own database on the shared Redis


@pytest.fixture(scope="module")
async def services(module_database_url: str, module_nats_url: str) -> AsyncIterator[dict[str, int]]:
    common: dict[str, Any] = {"environment": "test", "database_url": module_database_url}
    async with (
        running_service(
            CATALOG_SPEC, CatalogSettings(**common, nats_url=module_nats_url)
        ) as catalog_port,
        running_service(
            GENERATION_API_SPEC,
            GenerationSettings(
                **common, nats_url=module_nats_url, catalog_addr=f"127.0.0.1:{catalog_port}"
            ),
        ) as generation_port,
    ):
        session = SessionSettings(
            **common,
            nats_url=module_nats_url,
            catalog_addr=f"127.0.0.1:{catalog_port}",
            generation_addr=f"127.0.0.1:{generation_port}",
        )
        async with running_service(SESSION_SPEC, session) as session_port:
            feedback = FeedbackSettings(
                **common, nats_url=module_nats_url, session_addr=f"127.0.0.1:{session_port}"
            )
            async with running_service(FEEDBACK_SPEC, feedback) as feedback_port:
                yield {"catalog": catalog_port, "session": session_port, "feedback": feedback_port}


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
        feedback_addr=f"127.0.0.1:{services['feedback']}",
        rate_limit_per_minute=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


@pytest.fixture(scope="module")
async def js(module_nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc: NatsClient = await connect(module_nats_url, "gateway-feedback-tests")
    js = nc.jetstream()
    await ensure_streams(js)
    yield js
    await nc.close()


@pytest.fixture(scope="module")
async def jobs(
    js: JetStreamContext,
    services: dict[str, int],  # noqa: ARG001 — requested so the services run
) -> AsyncIterator[JetStreamContext.PullSubscription]:
    sub = await js.pull_subscribe(
        "jobs.>", durable="gw-feedback-worker", stream=JOBS_STREAM, config=ConsumerConfig()
    )
    yield sub
    await sub.unsubscribe()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _job(sub: JetStreamContext.PullSubscription, subject: str) -> Any:
    for _ in range(60):
        try:
            msgs = await sub.fetch(1, timeout=0.5)
        except (TimeoutError, NatsTimeoutError):
            continue
        for msg in msgs:
            await msg.ack()
            if msg.subject == subject:
                return msg
    raise AssertionError(f"no job on {subject}")


async def ready_session(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any, articles: int = 2
) -> tuple[dict[str, Any], list[str]]:
    """A written session (created through the API); its token and article ids."""
    topic = (await api.get("/main-topics/ai-ml")).json()
    ref = topic["sub_topics"][0]["id"]
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [ref],
            "level": "intermediate",
            "options": {"max_articles_per_subtopic": articles},
        },
    )
    assert reply.status_code == 201, reply.text
    created = dict(reply.json())
    sid = created["session_id"]
    await _job(jobs, "jobs.curriculum.generate")
    usage = events_pb2.GenerationUsage(model="m", provider="openai", input_tokens=1)
    await publish(
        js,
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(
            session_id=sid,
            title="피드백",
            items=[
                events_pb2.PlannedArticle(title=f"글 {n}", summary="요약", sub_topic_ref=ref)
                for n in range(articles)
            ],
            usage=usage,
        ),
    )
    ids = []
    for _ in range(articles):
        job = events_pb2.GenerateArticleJob.FromString(
            (await _job(jobs, "jobs.article.generate")).data
        )
        ids.append(job.article_id)
        await publish(
            js,
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(
                session_id=sid,
                article_id=job.article_id,
                article=events_pb2.WrittenArticle(
                    content="## 본문\n\n내용", word_count=480, title=job.article_id
                ),
                usage=usage,
            ),
        )
    for _ in range(200):
        body = (await api.get(f"/sessions/{sid}", headers=auth(created["access_token"]))).json()
        if body["status"] == "ready":
            return created, sorted(ids)
        await asyncio.sleep(0.05)
    raise AssertionError(f"session not ready: {body}")


@pytest.fixture(scope="module")
async def session(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any
) -> tuple[dict[str, Any], list[str]]:
    """One written session shared by the validation tests (nothing valid is sent to it)."""
    return await ready_session(api, js, jobs)


async def test_feedback_progress_and_analytics_in_the_prd_shapes(
    api: httpx.AsyncClient, js: JetStreamContext, jobs: Any
) -> None:
    created, ids = await ready_session(api, js, jobs)
    sid, headers = created["session_id"], auth(created["access_token"])

    reply = await api.post(
        f"/sessions/{sid}/progress",
        headers=headers,
        json={
            "article_id": ids[0],
            "action": "completed",
            "time_spent": 180,
            "scroll_depth": 0.95,
            "engagement_score": 0.87,
        },
    )
    assert reply.status_code == 201, reply.text
    entry = reply.json()
    assert entry["id"] > 0
    assert {k: entry[k] for k in ("session_id", "article_id", "action", "time_spent")} == {
        "session_id": sid,
        "article_id": ids[0],
        "action": "completed",
        "time_spent": 180,
    }
    assert (entry["scroll_depth"], entry["engagement_score"]) == (0.95, 0.87)
    assert entry["level"] == "intermediate"
    assert entry["timestamp"].endswith("Z")

    body = {
        "rating": "like",
        "feedback_type": ["difficulty", "clarity", "usefulness"],
        "comments": "예제가 더 있으면 좋겠어요",
        "difficulty_perceived": "appropriate",
        "session_id": sid,
    }
    reply = await api.post(f"/articles/{ids[0]}/feedback", headers=headers, json=body)
    assert reply.status_code == 201, reply.text
    stored = reply.json()
    assert {k: stored[k] for k in body} == body
    assert stored["article_id"] == ids[0]
    assert (stored["replaced"], stored["previous_rating"]) == (False, None)
    assert (stored["time_spent_reading"], stored["scroll_depth"]) == (180, 0.95)

    reply = await api.post(
        f"/articles/{ids[0]}/feedback",
        headers=headers,
        json={"rating": "dislike", "session_id": sid, "difficulty_perceived": "too_hard"},
    )
    assert reply.status_code == 201, reply.text
    changed = reply.json()
    assert changed["id"] == stored["id"]
    assert (changed["rating"], changed["replaced"], changed["previous_rating"]) == (
        "dislike",
        True,
        "like",
    )
    assert changed["comments"] is None

    reply = await api.get(f"/sessions/{sid}/analytics", headers=headers)
    assert reply.status_code == 200, reply.text
    analytics = reply.json()
    assert analytics == {
        "session_id": sid,
        "completion_rate": 0.5,
        "avg_time_per_article": 180,
        "total_engagement_score": 0.87,
        "positive_feedback_count": 0,
        "negative_feedback_count": 1,
        "avg_difficulty_rating": 3.0,
        "level_switches_count": 0,
        "most_used_level": "intermediate",
        "preferred_article_length": 480,
        "completed_articles": 1,
        "total_articles": 2,
        "total_time_spent": 180,
        "feedback_count": 1,
        "current_level": "intermediate",
        "adaptive_difficulty": False,
        "last_calculated_at": analytics["last_calculated_at"],
    }
    assert analytics["last_calculated_at"].endswith("Z")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rating": "love"}, "rating"),
        ({"rating": None}, "rating"),
        ({"feedback_type": ["clarity", "vibes"]}, "feedback_type.1"),
        ({"comments": "가" * 1001}, "comments"),
        ({"difficulty_perceived": "impossible"}, "difficulty_perceived"),
        ({"session_id": None}, "session_id"),
        ({"session_id": ""}, "session_id"),
    ],
)
async def test_bad_feedback_names_the_field(
    api: httpx.AsyncClient,
    session: tuple[dict[str, Any], list[str]],
    change: dict[str, Any],
    field: str,
) -> None:
    created, ids = session
    body = {"rating": "like", "session_id": created["session_id"]} | change
    body = {k: v for k, v in body.items() if v is not None}
    reply = await api.post(
        f"/articles/{ids[0]}/feedback", headers=auth(created["access_token"]), json=body
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action": "finished"}, "action"),
        ({"article_id": None}, "article_id"),
        ({"time_spent": -1}, "time_spent"),
        ({"scroll_depth": 1.2}, "scroll_depth"),
        ({"engagement_score": -0.1}, "engagement_score"),
        ({"device_type": "x" * 21}, "device_type"),
        ({"level": "wizard"}, "level"),
        # checked by feedback-service
        ({"referrer_url": "javascript:alert(1)"}, "referrer_url"),
        ({"action": "level_switched"}, "to_level"),
        ({"to_level": "beginner"}, "to_level"),
    ],
)
async def test_bad_progress_names_the_field(
    api: httpx.AsyncClient,
    session: tuple[dict[str, Any], list[str]],
    change: dict[str, Any],
    field: str,
) -> None:
    created, ids = session
    body = {"article_id": ids[0], "action": "started", "time_spent": 10} | change
    body = {k: v for k, v in body.items() if v is not None}
    reply = await api.post(
        f"/sessions/{created['session_id']}/progress",
        headers=auth(created["access_token"]),
        json=body,
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == field


async def test_tokens_and_unknown_ids(
    api: httpx.AsyncClient,
    js: JetStreamContext,
    jobs: Any,
    session: tuple[dict[str, Any], list[str]],
) -> None:
    mine, my_ids = session
    other, other_ids = await ready_session(api, js, jobs, articles=1)
    sid = mine["session_id"]
    feedback = {"rating": "like", "session_id": sid}
    progress = {"article_id": my_ids[0], "action": "started"}

    cases = [
        (api.post(f"/articles/{my_ids[0]}/feedback", json=feedback), 401, None),
        (
            api.post(f"/sessions/{sid}/progress", json=progress, headers=auth("st_" + "x" * 43)),
            401,
            None,
        ),
        (
            api.get(f"/sessions/{sid}/analytics", headers=auth(other["access_token"])),
            404,
            "session_id",
        ),
        (
            api.post(
                f"/articles/{other_ids[0]}/feedback",
                json=feedback,
                headers=auth(mine["access_token"]),
            ),
            404,
            "article_id",
        ),
        (
            api.post(
                f"/sessions/{sid}/progress",
                json=progress | {"article_id": f"{sid}_999"},
                headers=auth(mine["access_token"]),
            ),
            404,
            "article_id",
        ),
        (
            api.post(
                "/articles/nope/feedback",
                json=feedback | {"session_id": "sess_nope"},
                headers=auth(mine["access_token"]),
            ),
            404,
            "session_id",
        ),
    ]
    for call, status, field in cases:
        reply = await call
        assert reply.status_code == status, reply.text
        assert reply.json()["error"].get("field") == field
    # None of it was recorded.
    reply = await api.get(f"/sessions/{sid}/analytics", headers=auth(mine["access_token"]))
    assert reply.status_code == 200
    assert (reply.json()["feedback_count"], reply.json()["total_time_spent"]) == (0, 0)
