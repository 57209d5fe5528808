"""Learners' ratings reach the generated sub-topics' quality statistics: generation-service runs
in-process on a database and NATS of this module; the test plays feedback-service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools import engines
from infou_devtools.testing import running_service
from infou_generation.events import rating_change
from infou_generation.main import SPEC
from infou_generation.models import SCHEMA, GeneratedSubTopic
from infou_generation.settings import GenerationSettings
from infou_libs.db import create_engine, session_factory
from infou_libs.messaging import (
    EVENT_ID_HEADER,
    MSG_ID_HEADER,
    connect,
    ensure_streams,
    new_event_id,
    publish,
)
from infou_protos.events.v1 import events_pb2

SUBMITTED = "events.feedback.submitted"


@pytest.fixture(scope="module")
async def sessions(
    module_database_url: str, module_nats_url: str, breaker_redis_url: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    settings = GenerationSettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=breaker_redis_url,
        catalog_addr=f"127.0.0.1:{engines.free_port()}",
    )
    async with running_service(SPEC, settings):
        engine = create_engine(module_database_url, SCHEMA)
        yield session_factory(engine)
        await engine.dispose()


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(module_nats_url, "generation-feedback-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


async def _sub_topic(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        row = GeneratedSubTopic(
            generation_batch_id=f"gen_{new_event_id()}",
            main_topic_id=1,
            position=1,
            slug="rated",
            name="평가받는 소주제",
            learning_outcomes=[],
            prerequisites=[],
            practical_projects=[],
            generation_prompt="[test]",
            llm_model="offline",
        )
        db.add(row)
        await db.flush()
        return row.id


async def _counts(sessions: async_sessionmaker[AsyncSession], sub_id: int) -> tuple[int, int]:
    async with sessions() as db:
        row = await db.get(GeneratedSubTopic, sub_id)
        assert row is not None
        return row.positive_feedback_count, row.negative_feedback_count


async def _wait(
    sessions: async_sessionmaker[AsyncSession], sub_id: int, expected: tuple[int, int]
) -> tuple[int, int]:
    counts = await _counts(sessions, sub_id)
    for _ in range(200):
        if counts == expected:
            break
        await asyncio.sleep(0.05)
        counts = await _counts(sessions, sub_id)
    return counts


def rated(
    sub_id: int, article: str, rating: str, previous: str = "", curated: int = 0
) -> events_pb2.FeedbackSubmitted:
    return events_pb2.FeedbackSubmitted(
        session_id="sess_fb",
        article_id=article,
        rating=rating,
        previous_rating=previous,
        generated_sub_topic_id=sub_id,
        curated_sub_topic_id=curated,
    )


def test_a_replaced_rating_moves_the_counts() -> None:
    assert rating_change("like", "") == (1, 0)
    assert rating_change("dislike", "like") == (-1, 1)
    assert rating_change("like", "dislike") == (1, -1)
    assert rating_change("like", "like") == (0, 0)


async def test_ratings_count_once_per_article(
    sessions: async_sessionmaker[AsyncSession], nc: NatsClient
) -> None:
    js = nc.jetstream()
    sub_id = await _sub_topic(sessions)
    first = new_event_id()
    await publish(js, SUBMITTED, rated(sub_id, "sess_fb_001", "like"), event_id=first)
    await publish(js, SUBMITTED, rated(sub_id, "sess_fb_002", "like"))
    assert await _wait(sessions, sub_id, (2, 0)) == (2, 0)

    # A redelivery (the same event id, under a message id JetStream does not de-duplicate, as
    # after its window) counts nothing.
    await js.publish(
        SUBMITTED,
        rated(sub_id, "sess_fb_001", "like").SerializeToString(),
        headers={EVENT_ID_HEADER: first, MSG_ID_HEADER: new_event_id()},
    )
    # The learner changes their mind on the second article.
    await publish(js, SUBMITTED, rated(sub_id, "sess_fb_002", "dislike", previous="like"))
    assert await _wait(sessions, sub_id, (1, 1)) == (1, 1)

    # Curated articles and unknown sub-topics are not generation's to count.
    await publish(js, SUBMITTED, rated(0, "sess_fb_003", "dislike", curated=7))
    await publish(js, SUBMITTED, rated(sub_id + 10_000, "sess_fb_004", "dislike"))
    await publish(js, SUBMITTED, rated(sub_id, "sess_fb_005", "dislike"))
    assert await _wait(sessions, sub_id, (1, 2)) == (1, 2)
