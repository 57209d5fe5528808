"""The main topics session-service keeps for creates: kept across statistics changes, dropped at
once by a content change announced on events.catalog.changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infou_libs import subjects
from infou_protos.events.v1 import events_pb2
from infou_session.events import watch_catalog
from infou_session.topics import SubTopicRef, TopicDirectory


@pytest.fixture
async def directory(catalog_port: int, generation_port: int) -> AsyncIterator[TopicDirectory]:
    kept = TopicDirectory(
        f"127.0.0.1:{catalog_port}", f"127.0.0.1:{generation_port}", 2.0, cache_seconds=600
    )
    yield kept
    await kept.close()


async def rename(db: AsyncEngine, topic_id: int, name: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE catalog.main_topics SET name = :name WHERE id = :id"),
            {"name": name, "id": topic_id},
        )


async def announce(nc: NatsClient, topic_id: int, reason: str) -> None:
    event = events_pb2.CatalogChanged(main_topic_ids=[topic_id], reason=reason)
    await nc.publish(subjects.CATALOG_CHANGED, event.SerializeToString())
    await nc.flush()


async def test_a_kept_topic_survives_statistics_and_goes_with_a_content_change(
    directory: TopicDirectory,
    nc: NatsClient,
    db: AsyncEngine,
    topics: list[Any],
    eventually: Callable[..., Awaitable[Any]],
) -> None:
    topic = topics[0]
    refs = [SubTopicRef("curated", topic.curated[0])]
    await watch_catalog(nc, directory)
    first = await directory.resolve(topic.id, refs)
    original = first.main_topic["name"]
    try:
        await rename(db, topic.id, "다시 심은 이름")
        await announce(nc, topic.id, "session_created")
        await asyncio.sleep(0.3)  # the event is in; the kept facts did not change with it
        assert (await directory.resolve(topic.id, refs)).main_topic["name"] == original

        await announce(nc, topic.id, "seed")

        async def name() -> Any:
            return (await directory.resolve(topic.id, refs)).main_topic["name"]

        assert await eventually(name, lambda got: got == "다시 심은 이름") == "다시 심은 이름"
    finally:
        await rename(db, topic.id, original)


async def test_concurrent_creates_of_one_topic_resolve_alike(
    directory: TopicDirectory, topics: list[Any]
) -> None:
    topic = topics[1]
    refs = [SubTopicRef("curated", topic.curated[0])]
    selections = await asyncio.gather(*(directory.resolve(topic.id, refs) for _ in range(20)))
    assert {s.main_topic["id"] for s in selections} == {topic.id}
    assert all(s.sub_topics == selections[0].sub_topics for s in selections)
