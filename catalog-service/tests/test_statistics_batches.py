"""SessionCreated events are counted a batch at a time: each distinct event id exactly once,
whatever arrives with it (copies, a poison message) and however often it is delivered."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog.events import statistics_consumers
from infou_catalog.main import seed_command
from infou_catalog.models import SCHEMA, CuratedSubTopic, MainTopic, outbox, processed_events
from infou_catalog.settings import CatalogSettings
from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.messaging import (
    EVENT_ID_HEADER,
    EVENTS_STREAM,
    MSG_ID_HEADER,
    BatchDurableConsumer,
)
from infou_libs.subjects import CATALOG_CHANGED, SESSION_CREATED
from infou_protos.events.v1 import events_pb2

DURABLE = "catalog-session-created"
WINDOW = 5.0


@dataclass(frozen=True)
class Catalog:
    js: JetStreamContext
    sessions: async_sessionmaker[AsyncSession]

    def consumer(self, window: float = WINDOW) -> BatchDurableConsumer:
        """The service's SessionCreated consumer (not started)."""
        found = [
            c
            for c in statistics_consumers(self.js, self.sessions, window, batch_seconds=0.3)
            if c.durable == DURABLE
        ]
        assert isinstance(found[0], BatchDurableConsumer)
        return found[0]

    async def topics(self) -> dict[str, MainTopic]:
        async with unit_of_work(self.sessions) as db:
            return {t.slug: t for t in await db.scalars(select(MainTopic))}

    async def usage(self) -> dict[int, int]:
        async with unit_of_work(self.sessions) as db:
            rows = await db.execute(select(CuratedSubTopic.id, CuratedSubTopic.usage_count))
            return {int(i): int(n) for i, n in rows}

    async def claims(self) -> list[tuple[str, object]]:
        """(event id, processed_at) of every claimed SessionCreated."""
        async with unit_of_work(self.sessions) as db:
            rows = await db.execute(
                select(processed_events.c.event_id, processed_events.c.processed_at).where(
                    processed_events.c.consumer == DURABLE
                )
            )
            return [(str(i), at) for i, at in rows]

    async def announced(self) -> list[events_pb2.CatalogChanged]:
        async with unit_of_work(self.sessions) as db:
            rows = await db.scalars(
                select(outbox.c.payload)
                .where(outbox.c.subject == CATALOG_CHANGED)
                .order_by(outbox.c.id)
            )
            changes = [events_pb2.CatalogChanged.FromString(p) for p in rows]
        return [c for c in changes if c.reason == "session_created"]

    async def deliver(self, event: events_pb2.SessionCreated | bytes, event_id: str = "") -> str:
        """Publishes an event; with an earlier one's id it is that event delivered again."""
        event_id = event_id or uuid.uuid4().hex
        data = event if isinstance(event, bytes) else event.SerializeToString()
        # A fresh Nats-Msg-Id gets a copy past JetStream's own de-duplication.
        headers = {EVENT_ID_HEADER: event_id, MSG_ID_HEADER: uuid.uuid4().hex}
        await self.js.publish(SESSION_CREATED, data, headers=headers)
        return event_id

    async def info(self) -> ConsumerInfo:
        info: ConsumerInfo = await self.js.consumer_info(EVENTS_STREAM, DURABLE)
        return info

    async def deliveries(self) -> int:
        """Messages the consumer handed out, redeliveries included."""
        delivered = (await self.info()).delivered
        return (delivered.consumer_seq or 0) if delivered else 0


@pytest.fixture
async def catalog(
    fresh_database_url: str, module_nats_url: str, js: JetStreamContext
) -> AsyncIterator[Catalog]:
    """A seeded catalog database and an empty stream with no SessionCreated consumer yet."""
    del module_nats_url  # the module's own NATS server (js), which this test may empty
    await seed_command(CatalogSettings(environment="test", database_url=fresh_database_url))
    await js.purge_stream(EVENTS_STREAM)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(EVENTS_STREAM, DURABLE)
    engine = create_engine(fresh_database_url, SCHEMA, pool_size=2)
    yield Catalog(js, session_factory(engine))
    await engine.dispose()


@contextlib.asynccontextmanager
async def running(consumer: BatchDurableConsumer) -> AsyncIterator[None]:
    await consumer.start()
    try:
        yield
    finally:
        await consumer.stop()


async def settled(catalog: Catalog, eventually: Callable[..., Awaitable[object]]) -> None:
    """Waits until every published message was acked or terminated (none pending)."""
    info = await eventually(catalog.info, lambda i: i.num_pending == 0 and i.num_ack_pending == 0)
    assert isinstance(info, ConsumerInfo)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


def created(topic: MainTopic, *curated: int) -> events_pb2.SessionCreated:
    return events_pb2.SessionCreated(
        session_id=f"sess_{uuid.uuid4().hex[:8]}",
        main_topic_id=topic.id,
        curated_sub_topic_ids=list(curated),
    )


async def curated_of(catalog: Catalog, topic: MainTopic) -> list[int]:
    async with unit_of_work(catalog.sessions) as db:
        ids = await db.scalars(
            select(CuratedSubTopic.id)
            .where(CuratedSubTopic.main_topic_id == topic.id)
            .order_by(CuratedSubTopic.id)
        )
        return list(ids)


async def test_a_batch_counts_each_distinct_event_once_in_one_transaction(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    web = (await catalog.topics())["web-development"]
    a, b = (await curated_of(catalog, web))[:2]
    # All waiting before the consumer starts: its first fetch takes them as one batch.
    first = await catalog.deliver(created(web, a, b))
    await catalog.deliver(created(web, b, b))  # listed twice: one use
    await catalog.deliver(created(web, a, b), first)  # the first event, delivered again
    await catalog.deliver(created(web))
    async with running(catalog.consumer()):
        await settled(catalog, eventually)

    assert (await catalog.topics())["web-development"].total_learners == 3
    usage = await catalog.usage()
    assert (usage[a], usage[b]) == (1, 2)
    claims = await catalog.claims()
    assert len(claims) == 3
    assert len({at for _, at in claims}) == 1  # one transaction's now(): one batch
    # Within the window the batch announces the topic once.
    assert [list(c.main_topic_ids) for c in await catalog.announced()] == [[web.id]]


async def test_without_a_window_each_event_of_a_batch_announces_its_own_topics(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    topics = await catalog.topics()
    web, ai = topics["web-development"], topics["ai-ml"]
    ai_curated = (await curated_of(catalog, ai))[0]
    await catalog.deliver(created(web))
    await catalog.deliver(created(web, ai_curated))
    async with running(catalog.consumer(window=0)):
        await settled(catalog, eventually)

    assert len({at for _, at in await catalog.claims()}) == 1  # one batch
    announced = sorted(sorted(c.main_topic_ids) for c in await catalog.announced())
    assert announced == sorted([[web.id], sorted([web.id, ai.id])])


async def test_a_poison_message_fails_alone_and_the_rest_of_its_batch_counts_once(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    web = (await catalog.topics())["web-development"]
    a = (await curated_of(catalog, web))[0]
    first = await catalog.deliver(created(web, a))
    await catalog.deliver(b"\xff not a SessionCreated")  # can never succeed
    await catalog.deliver(created(web, a))
    await catalog.deliver(created(web, a), first)
    await catalog.deliver(created(web))
    async with running(catalog.consumer()):
        await settled(catalog, eventually)  # the poison one terminated, the others acked

    assert (await catalog.topics())["web-development"].total_learners == 3
    assert (await catalog.usage())[a] == 2
    assert len(await catalog.claims()) == 3


async def test_redelivery_after_a_crash_before_the_ack_counts_once(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    web = (await catalog.topics())["web-development"]
    a = (await curated_of(catalog, web))[0]
    for _ in range(3):
        await catalog.deliver(created(web, a))

    # A replica takes the batch and commits its counts, then dies before acking.
    crashed = catalog.consumer()
    crashed.ack_wait = 1.0  # so JetStream hands the batch out again soon
    sub = await catalog.js.pull_subscribe(
        SESSION_CREATED, durable=DURABLE, stream=EVENTS_STREAM, config=crashed.config()
    )
    msgs = await sub.fetch(3, timeout=5)
    assert len(msgs) == 3
    await crashed.batch_handler(msgs)
    await sub.unsubscribe()
    assert (await catalog.topics())["web-development"].total_learners == 3

    # The restarted consumer gets the same messages again and finds them claimed.
    restarted = catalog.consumer()
    async with running(restarted):
        # Three first deliveries, then the three again.
        await eventually(catalog.deliveries, lambda n: n >= 6)
        await settled(catalog, eventually)
    assert await catalog.deliveries() >= 6
    assert (await catalog.topics())["web-development"].total_learners == 3
    assert (await catalog.usage())[a] == 3
    assert len(await catalog.claims()) == 3


async def test_learner_and_usage_counts_equal_the_distinct_events(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    rng = random.Random(14)
    topics = await catalog.topics()
    chosen = [topics[s] for s in ("web-development", "ai-ml", "data-science") if s in topics]
    assert len(chosen) >= 2
    curated = {t.id: await curated_of(catalog, t) for t in chosen}
    learners: Counter[int] = Counter()
    uses: Counter[int] = Counter()
    sent: list[tuple[str, events_pb2.SessionCreated]] = []

    async def send_some(n: int) -> None:
        for _ in range(n):
            if sent and rng.random() < 0.25:  # a copy of an earlier event
                event_id, event = rng.choice(sent)
                await catalog.deliver(event, event_id)
                continue
            topic = rng.choice(chosen)
            event = created(topic, *rng.choices(curated[topic.id], k=rng.randint(0, 3)))
            sent.append((await catalog.deliver(event), event))
            learners[topic.id] += 1
            uses.update(set(event.curated_sub_topic_ids))

    await send_some(40)  # waiting before the start: full batches
    async with running(catalog.consumer()):
        await send_some(40)  # arriving while it runs
        await asyncio.sleep(0.5)
        await send_some(20)  # a second copy of an event may follow the event's own batch
        await settled(catalog, eventually)

    after = {t.id: t.total_learners for t in (await catalog.topics()).values()}
    assert {i: after[i] for i in learners} == dict(learners)
    assert sum(after.values()) == len(sent)
    usage = await catalog.usage()
    assert {i: n for i, n in usage.items() if n} == dict(uses)
    claims = await catalog.claims()
    assert len(claims) == len(sent)
    assert len({at for _, at in claims}) < len(sent)  # some were counted together


async def test_unknown_topics_are_skipped_without_failing_the_batch(
    catalog: Catalog, eventually: Callable[..., Awaitable[object]]
) -> None:
    web = (await catalog.topics())["web-development"]
    await catalog.deliver(created(web))
    await catalog.deliver(events_pb2.SessionCreated(main_topic_id=999_999))
    await catalog.deliver(created(web, 999_998))  # an unknown curated sub-topic too
    async with running(catalog.consumer()):
        await settled(catalog, eventually)
    assert (await catalog.topics())["web-development"].total_learners == 2
    claims = await catalog.claims()
    assert len(claims) == 3
    assert len({at for _, at in claims}) == 1
    async with unit_of_work(catalog.sessions) as db:
        assert await db.scalar(select(func.sum(MainTopic.total_learners))) == 2
