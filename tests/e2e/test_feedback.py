"""A learner reads, rates and records progress through the whole stack (offline LLM): the
analytics, the session's progress and the catalog's statistics follow, adaptive difficulty
moves the unread article a level down, and the learner's comment never reaches the logs.

This module runs a stack of its own (database, NATS, Redis database): the sessions it creates
must not show in the shared stack's counts (its /health test expects none).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from infou_devtools import engines
from infou_devtools.stack import Stack

T = TypeVar("T")
COMMENT = "예제가 더 있으면 좋겠어요, 연락은 010-9876-5432 로"
REDIS_DB = 13


@pytest.fixture(scope="module")
async def stack(
    pg_server_url: str,
    module_nats_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("feedback-stack")
    stack = Stack(
        data_dir=data_dir,
        gateway_port=engines.free_port(),
        database_url=pg_server_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        database_name=f"infou_e2e_fb_{uuid.uuid4().hex[:8]}",
        extra_env={"INFOU_ENVIRONMENT": "test", "INFOU_LOG_JSON": "true"},
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


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 60.0
) -> T:
    deadline = time.monotonic() + timeout
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        result = await probe()
    return result


async def test_read_rate_and_see_progress_analytics_and_adaptive_difficulty(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    topic = (await api.get("/main-topics/ai-ml")).json()
    curated = topic["sub_topics"][0]
    reply = await api.post(
        "/sessions",
        json={
            "main_topic_id": topic["id"],
            "sub_topic_ids": [curated["id"]],
            "level": "intermediate",
            "options": {"max_articles_per_subtopic": 3, "enable_adaptive_difficulty": True},
        },
    )
    assert reply.status_code == 201, reply.text
    created = reply.json()
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['access_token']}"}

    async def session() -> dict[str, Any]:
        return dict((await api.get(f"/sessions/{sid}", headers=headers)).json())

    ready = await eventually(session, lambda s: s["status"] in ("ready", "failed"), 120)
    assert ready["status"] == "ready", ready
    curriculum = (await api.get(f"/sessions/{sid}/curriculum", headers=headers)).json()
    ids = [item["id"] for item in curriculum["items"]]
    assert len(ids) == 3

    # Read the first article to the end, and say so.
    first = (await api.get(f"/articles/{ids[0]}", headers=headers)).json()
    assert first["level"] == "intermediate"
    for action, seconds in (("started", 30), ("completed", 150)):
        reply = await api.post(
            f"/sessions/{sid}/progress",
            headers=headers,
            json={
                "article_id": ids[0],
                "action": action,
                "time_spent": seconds,
                "scroll_depth": 0.9,
                "engagement_score": 0.8,
                "device_type": "desktop",
            },
        )
        assert reply.status_code == 201, reply.text

    reply = await api.post(
        f"/articles/{ids[0]}/feedback",
        headers=headers,
        json={
            "rating": "like",
            "feedback_type": ["usefulness"],
            "comments": COMMENT,
            "difficulty_perceived": "appropriate",
            "session_id": sid,
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["comments"] == COMMENT

    analytics = (await api.get(f"/sessions/{sid}/analytics", headers=headers)).json()
    assert analytics["completion_rate"] == 0.33
    assert analytics["completed_articles"] == 1
    assert analytics["total_time_spent"] == 180
    assert analytics["avg_time_per_article"] == 180
    assert analytics["total_engagement_score"] == 0.8
    assert (analytics["positive_feedback_count"], analytics["negative_feedback_count"]) == (1, 0)
    assert analytics["avg_difficulty_rating"] == 2.0
    assert analytics["preferred_article_length"] == first["word_count"]

    # GET /sessions/{id} shows the learner's progress (session-service applied the events).
    progressed = await eventually(session, lambda s: s["curriculum"]["completed_articles"] == 1)
    assert progressed["curriculum"]["completed_articles"] == 1
    assert progressed["progress"]["completion_percentage"] == 33.3
    assert progressed["progress"]["time_spent"] == "3분"
    assert progressed["progress"]["current_article_id"] == ids[1]
    assert progressed["progress"]["last_accessed"] is not None

    # The catalog rated the curated sub-topic and averaged the topic's completion.
    async def catalog() -> dict[str, Any]:
        return dict((await api.get("/main-topics/ai-ml")).json())

    rated = await eventually(
        catalog,
        lambda t: (
            next(s for s in t["sub_topics"] if s["id"] == curated["id"])["avg_rating"] == 5.0
            and t["avg_completion_rate"] > 0
        ),
    )
    assert next(s for s in rated["sub_topics"] if s["id"] == curated["id"])["avg_rating"] == 5.0
    assert rated["avg_completion_rate"] == pytest.approx(0.33, abs=0.01)

    # Too hard, twice of the last three: the unread third article is converted a level down.
    for article_id in (ids[1], ids[0]):
        reply = await api.post(
            f"/articles/{article_id}/feedback",
            headers=headers,
            json={"rating": "dislike", "difficulty_perceived": "too_hard", "session_id": sid},
        )
        assert reply.status_code == 201, reply.text

    async def easier() -> int:
        reply = await api.get(f"/articles/{ids[2]}?level=beginner", headers=headers)
        return reply.status_code

    assert await eventually(easier, lambda code: code == 200, 90) == 200
    analytics = (await api.get(f"/sessions/{sid}/analytics", headers=headers)).json()
    assert (analytics["current_level"], analytics["level_switches_count"]) == ("beginner", 1)
    assert (analytics["positive_feedback_count"], analytics["negative_feedback_count"]) == (0, 2)
    rerated = await eventually(
        catalog,
        lambda t: next(s for s in t["sub_topics"] if s["id"] == curated["id"])["avg_rating"] == 1.0,
    )
    assert next(s for s in rerated["sub_topics"] if s["id"] == curated["id"])["avg_rating"] == 1.0

    # The learner's comment is personal data: no log line carries it.
    assert stack.log_file is not None
    logs = stack.log_file.read_text(encoding="utf-8")
    assert "feedback_submitted" in logs
    assert "010-9876-5432" not in logs
    assert "연락은" not in logs


async def test_bad_input_and_other_sessions(api: httpx.AsyncClient) -> None:
    reply = await api.post(
        "/sessions/sess_nope/progress",
        json={"article_id": "sess_nope_001", "action": "started"},
    )
    assert reply.status_code == 401
    reply = await api.post(
        "/articles/sess_nope_001/feedback", json={"rating": "meh", "session_id": "sess_nope"}
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "rating"
    reply = await api.get("/sessions/sess_nope/analytics")
    assert reply.status_code == 401
