"""Personal data expires: each service's sweep erases what is past its time, keeps the rest and
its statistics, changes nothing the second time, and runs on one replica at a time."""

import asyncio
import datetime as dt
import importlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.migrations import upgrade
from infou_libs.retention import lock_key, sweep_once

NOW = dt.datetime.now(dt.UTC)
OLD = NOW - dt.timedelta(days=120)


@pytest.fixture
async def factories(
    fresh_database_url: str,
) -> AsyncIterator[dict[str, async_sessionmaker[AsyncSession]]]:
    made = {}
    engines = []
    for service in ("session", "generation", "feedback", "realtime"):
        spec = importlib.import_module(f"infou_{service}.main").SPEC
        await asyncio.to_thread(upgrade, spec.migrations_dir, fresh_database_url, spec.schema)
        engine = create_engine(fresh_database_url, spec.schema, pool_size=2)
        engines.append(engine)
        made[service] = session_factory(engine)
    yield made
    for engine in engines:
        await engine.dispose()


def _counter(service: str, target: str) -> float:
    value = REGISTRY.get_sample_value(
        "infou_retention_rows_total", {"service": service, "target": target}
    )
    return value or 0.0


async def _sweep(service: str, factory: async_sessionmaker[AsyncSession]) -> dict[str, int] | None:
    spec = importlib.import_module(f"infou_{service}.main").SPEC
    return await sweep_once(service, factory, spec.retention, ttl_days=90, now=NOW)


async def test_session_sweep_deletes_expired_sessions_and_erases_old_input(factories) -> None:  # type: ignore[no-untyped-def]
    from infou_session.models import LearningSession

    def session(sid: str, created: dt.datetime, expires: dt.datetime) -> LearningSession:
        return LearningSession(
            id=sid,
            main_topic_id=1,
            selected_subtopics=[],
            target_level="beginner",
            personalization_settings={"learning_goals": f"goal of {sid}"},
            access_token_hash=f"hash-{sid}",
            expires_at=expires,
            created_at=created,
        )

    async with unit_of_work(factories["session"]) as db:
        db.add_all(
            [
                session("expired", OLD, NOW - dt.timedelta(days=1)),
                session("old_but_open", OLD, NOW + dt.timedelta(days=30)),
                session("fresh", NOW, NOW + dt.timedelta(days=30)),
            ]
        )
    before = _counter("session", "learning_sessions.deleted")
    assert await _sweep("session", factories["session"]) == {
        "learning_sessions.deleted": 1,
        "learning_sessions.personalization_erased": 1,
    }
    assert _counter("session", "learning_sessions.deleted") == before + 1
    async with unit_of_work(factories["session"]) as db:
        rows = {s.id: s for s in (await db.scalars(select(LearningSession))).all()}
    assert set(rows) == {"old_but_open", "fresh"}
    assert rows["old_but_open"].personalization_settings is None
    assert rows["fresh"].personalization_settings == {"learning_goals": "goal of fresh"}
    # Idempotent: nothing is left to erase.
    assert await _sweep("session", factories["session"]) == {
        "learning_sessions.deleted": 0,
        "learning_sessions.personalization_erased": 0,
    }


async def test_generation_sweep_keeps_sub_topics_and_erases_input(factories) -> None:  # type: ignore[no-untyped-def]
    from infou_generation.models import ContentAdaptation, ContentCache, SubTopicGenerationRequest

    def request(batch: str, created: dt.datetime) -> SubTopicGenerationRequest:
        return SubTopicGenerationRequest(
            generation_batch_id=batch,
            main_topic_id=1,
            personalization_input={"interests": ["nlp"], "learning_goals": batch},
            generation_options={},
            estimated_completion_at=created,
            expires_at=created + dt.timedelta(days=90),
            created_at=created,
            llm_cost_usd=Decimal("0.5"),
        )

    def cached(key: str, created: dt.datetime, *, personal: bool) -> ContentCache:
        return ContentCache(
            key=key,
            task="article",
            prompt_version="v",
            data={"title": key},
            provider="openai",
            model="gpt-4.1",
            personal=personal,
            created_at=created,
        )

    def adapted(key: str, created: dt.datetime) -> ContentAdaptation:
        return ContentAdaptation(
            key=key,
            base_key="shared_old",
            task="article",
            prompt_version="v",
            model_family="openai:gpt-4.1",
            data={"heading": "h", "connection": key, "example": "e"},
            provider="openai",
            model="gpt-4.1",
            created_at=created,
        )

    async with unit_of_work(factories["generation"]) as db:
        db.add_all([request("gen_old", OLD), request("gen_new", NOW)])
        db.add_all(
            [
                cached("personal_old", OLD, personal=True),
                cached("personal_new", NOW, personal=True),
                cached("shared_old", OLD, personal=False),
                adapted("adaptation_old", OLD),
                adapted("adaptation_new", NOW),
            ]
        )
    removed = await _sweep("generation", factories["generation"])
    assert removed == {
        "subtopic_generation_requests.personalization_erased": 1,
        "generated_sub_topics.personalization_erased": 0,
        "content_cache.personal_deleted": 1,
        "content_adaptations.deleted": 1,
    }
    async with unit_of_work(factories["generation"]) as db:
        adaptations = set((await db.scalars(select(ContentAdaptation.key))).all())
    # A learner's section over shared content is personal data: it goes after the cutoff.
    assert adaptations == {"adaptation_new"}
    async with unit_of_work(factories["generation"]) as db:
        keys = set((await db.scalars(select(ContentCache.key))).all())
    # Content written with learner text goes with it; content shared by every learner stays.
    assert {"personal_new", "shared_old"} <= keys
    assert "personal_old" not in keys
    async with unit_of_work(factories["generation"]) as db:
        rows = {
            r.generation_batch_id: r
            for r in (await db.scalars(select(SubTopicGenerationRequest))).all()
        }
    assert rows["gen_old"].personalization_input is None
    assert rows["gen_old"].llm_cost_usd == Decimal("0.5")  # the ledger figures stay
    assert rows["gen_new"].personalization_input == {
        "interests": ["nlp"],
        "learning_goals": "gen_new",
    }


async def test_feedback_sweep_erases_text_and_keeps_ratings(factories) -> None:  # type: ignore[no-untyped-def]
    from infou_feedback.models import ArticleFeedback, LearningProgressLog

    async with unit_of_work(factories["feedback"]) as db:
        db.add_all(
            [
                ArticleFeedback(
                    article_id="a1",
                    session_id="s1",
                    rating="good",
                    comments="old words",
                    created_at=OLD,
                    updated_at=OLD,
                ),
                ArticleFeedback(
                    article_id="a2", session_id="s1", rating="bad", comments="new words"
                ),
                LearningProgressLog(
                    session_id="s1",
                    article_id="a1",
                    action="completed",
                    timestamp=OLD,
                    referrer_url="https://old.example/",
                ),
            ]
        )
    assert await _sweep("feedback", factories["feedback"]) == {
        "article_feedback.comments_erased": 1,
        "learning_progress_logs.referrer_erased": 1,
    }
    async with unit_of_work(factories["feedback"]) as db:
        feedback = {f.article_id: f for f in (await db.scalars(select(ArticleFeedback))).all()}
        log = (await db.scalars(select(LearningProgressLog))).one()
    assert (feedback["a1"].rating, feedback["a1"].comments) == ("good", None)
    assert feedback["a2"].comments == "new words"
    assert (log.action, log.referrer_url) == ("completed", None)
    assert set((await _sweep("feedback", factories["feedback"]) or {}).values()) == {0}


async def test_realtime_sweep_anonymises_old_connections(factories) -> None:  # type: ignore[no-untyped-def]
    from infou_realtime.models import WebsocketConnection

    async with unit_of_work(factories["realtime"]) as db:
        db.add_all(
            [
                WebsocketConnection(
                    connection_id="old",
                    session_id="s1",
                    client_ip="203.0.113.9",
                    user_agent="agent",
                    connected_at=OLD,
                ),
                WebsocketConnection(connection_id="new", session_id="s1", client_ip="203.0.113.10"),
            ]
        )
    assert await _sweep("realtime", factories["realtime"]) == {
        "websocket_connections.anonymised": 1
    }
    async with unit_of_work(factories["realtime"]) as db:
        rows = {c.connection_id: c for c in (await db.scalars(select(WebsocketConnection))).all()}
    assert set(rows) == {"old", "new"}  # the rows (connection statistics) stay
    assert (rows["old"].client_ip, rows["old"].user_agent) == (None, None)
    assert rows["new"].client_ip == "203.0.113.10"


async def test_one_replica_sweeps_at_a_time(factories) -> None:  # type: ignore[no-untyped-def]
    async with unit_of_work(factories["realtime"]) as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("realtime")})
        assert await _sweep("realtime", factories["realtime"]) is None
    assert await _sweep("realtime", factories["realtime"]) is not None
