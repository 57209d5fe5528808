"""Statistic-driven CatalogChanged announcements are coalesced per topic and window; counts
stay exact per event, and a pending change is announced once its window has passed."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog.events import announce_pending, on_sessions_created
from infou_catalog.main import seed_command
from infou_catalog.models import SCHEMA, MainTopic, outbox
from infou_catalog.settings import CatalogSettings
from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.subjects import CATALOG_CHANGED
from infou_protos.events.v1 import events_pb2

WINDOW = 5.0
STATISTICS_REASONS = {"session_created", "statistics"}


@pytest.fixture
async def sessions(fresh_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await seed_command(CatalogSettings(environment="test", database_url=fresh_database_url))
    engine = create_engine(fresh_database_url, SCHEMA, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


async def _topic(sessions: async_sessionmaker[AsyncSession], slug: str) -> MainTopic:
    async with unit_of_work(sessions) as db:
        found = await db.scalar(select(MainTopic).where(MainTopic.slug == slug))
        assert found is not None
        return found


async def _announced(sessions: async_sessionmaker[AsyncSession]) -> list[events_pb2.CatalogChanged]:
    async with unit_of_work(sessions) as db:
        rows = await db.scalars(
            select(outbox.c.payload)
            .where(outbox.c.subject == CATALOG_CHANGED)
            .order_by(outbox.c.id)
        )
        changes = [events_pb2.CatalogChanged.FromString(p) for p in rows]
    return [c for c in changes if c.reason in STATISTICS_REASONS]  # not the seed's


async def _created(
    sessions: async_sessionmaker[AsyncSession], topic_id: int, window: float
) -> None:
    async with unit_of_work(sessions) as db:
        await on_sessions_created(
            db, [events_pb2.SessionCreated(main_topic_id=topic_id)], window_seconds=window
        )


async def _window_passes(sessions: async_sessionmaker[AsyncSession], topic_id: int) -> None:
    """Moves the topic's last announcement one window into the past (no sleeping)."""
    async with unit_of_work(sessions) as db:
        await db.execute(
            update(MainTopic)
            .where(MainTopic.id == topic_id)
            .values(
                stats_announced_at=MainTopic.stats_announced_at - dt.timedelta(seconds=WINDOW + 1)
            )
        )


async def test_creates_within_the_window_announce_once_then_the_sweep_announces_the_rest(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _topic(sessions, "web-development")
    for _ in range(5):
        await _created(sessions, t.id, WINDOW)
    changes = await _announced(sessions)
    assert [list(c.main_topic_ids) for c in changes] == [[t.id]]
    assert changes[0].reason == "session_created"
    assert (await _topic(sessions, "web-development")).total_learners == 5  # counts exact

    # Within the window the sweep leaves the pending change alone ...
    async with unit_of_work(sessions) as db:
        assert await announce_pending(db, WINDOW) == 0
    # ... and announces it (once) when the window has passed.
    await _window_passes(sessions, t.id)
    async with unit_of_work(sessions) as db:
        assert await announce_pending(db, WINDOW) == 1
    async with unit_of_work(sessions) as db:
        assert await announce_pending(db, WINDOW) == 0
    changes = await _announced(sessions)
    assert [list(c.main_topic_ids) for c in changes] == [[t.id], [t.id]]
    assert list(changes[1].main_topic_slugs) == ["web-development"]


async def test_a_create_after_the_window_announces_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _topic(sessions, "web-development")
    await _created(sessions, t.id, WINDOW)
    await _window_passes(sessions, t.id)
    await _created(sessions, t.id, WINDOW)
    assert len(await _announced(sessions)) == 2
    async with unit_of_work(sessions) as db:
        assert await announce_pending(db, WINDOW) == 0  # nothing left pending
    assert (await _topic(sessions, "web-development")).total_learners == 2


async def test_window_zero_announces_every_create(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    t = await _topic(sessions, "web-development")
    for _ in range(3):
        await _created(sessions, t.id, 0)
    assert len(await _announced(sessions)) == 3
