"""Live statistics: other contexts' events, consumed once each, move the catalog's numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Protocol, TypeAlias, TypeVar

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infou_catalog.service import popularity_score
from infou_libs.messaging import EVENT_ID_HEADER, MSG_ID_HEADER
from infou_libs.subjects import (
    CATALOG_CHANGED,
    FEEDBACK_SUBMITTED,
    SESSION_ANALYTICS_UPDATED,
    SESSION_CREATED,
    SUBTOPICS_GENERATED,
)
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2

# The aio channel gives the async stub, which only the .pyi declares.
Stub: TypeAlias = "catalog_pb2_grpc.CatalogServiceAsyncStub"
T = TypeVar("T")


class Eventually(Protocol):
    """The `eventually` fixture: polls `probe` until `done(result)`, returns the last result."""

    def __call__(
        self, probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = ...
    ) -> Awaitable[T]: ...


async def deliver(
    js: JetStreamContext, subject: str, event: Message | bytes, event_id: str | None = None
) -> str:
    """Publishes an event; with the id of an earlier one, it is that event delivered again.

    A fresh Nats-Msg-Id gets the copy past JetStream's own de-duplication, as a redelivery
    after a lost ack would, so only the consumer's idempotency stands between it and a count.
    """
    event_id = event_id or uuid.uuid4().hex
    headers = {EVENT_ID_HEADER: event_id, MSG_ID_HEADER: uuid.uuid4().hex}
    data = event if isinstance(event, bytes) else event.SerializeToString()
    await js.publish(subject, data, headers=headers)
    return event_id


def at(minutes: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes))
    return ts


async def topic(catalog: Stub, slug: str) -> catalog_pb2.MainTopicDetail:
    return await catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(slug=slug), timeout=5)


@pytest.fixture
async def changes(nc: NatsClient) -> AsyncIterator[list[events_pb2.CatalogChanged]]:
    """CatalogChanged events the service announces while the test runs."""
    seen: list[events_pb2.CatalogChanged] = []

    async def on_change(msg: Msg) -> None:
        seen.append(events_pb2.CatalogChanged.FromString(msg.data))

    # A core NATS subscription sees what JetStream publishers send, too.
    sub = await nc.subscribe(CATALOG_CHANGED, cb=on_change)
    yield seen
    await sub.unsubscribe()


async def test_session_created_counts_learners_and_usage_once(
    catalog: Stub,
    js: JetStreamContext,
    eventually: Eventually,
    changes: list[events_pb2.CatalogChanged],
) -> None:
    before = await topic(catalog, "web-development")
    t = before.topic
    a, b = before.sub_topics[0], before.sub_topics[1]
    assert (t.total_learners, a.usage_count, b.usage_count) == (0, 0, 0)
    assert t.popularity_score == 0

    created = events_pb2.SessionCreated(
        session_id="sess_a", main_topic_id=t.id, curated_sub_topic_ids=[a.id, b.id, a.id]
    )
    event_id = await deliver(js, SESSION_CREATED, created)
    await deliver(js, SESSION_CREATED, created, event_id)  # the same event, delivered twice
    await deliver(
        js,
        SESSION_CREATED,
        events_pb2.SessionCreated(
            session_id="sess_b", main_topic_id=t.id, curated_sub_topic_ids=[b.id]
        ),
    )
    # The consumer works in stream order: once sess_b is in, the duplicate was seen before it.
    after = await eventually(
        lambda: topic(catalog, "web-development"), lambda d: d.topic.total_learners >= 2
    )
    await asyncio.sleep(0.3)
    after = await topic(catalog, "web-development")
    assert after.topic.total_learners == 2
    assert after.sub_topics[0].usage_count == 1  # listed twice in one event: one use
    assert after.sub_topics[1].usage_count == 2
    assert after.topic.popularity_score > 0
    assert after.topic.popularity_score == pytest.approx(
        float(
            popularity_score(
                total_learners=2,
                avg_completion_rate=0,
                rating_count=0,
                rating_total=0,
                generated_count=0,
            )
        )
    )
    # Each handled event announced the change (the duplicate did not), for cache invalidation.
    await eventually(lambda: _noop(changes), lambda c: len(c) >= 2)
    mine = [c for c in changes if list(c.main_topic_ids) == [t.id]]
    assert len(mine) == 2
    assert all(list(c.main_topic_slugs) == ["web-development"] for c in mine)
    assert {c.reason for c in mine} == {"session_created"}


async def _noop(value: list[events_pb2.CatalogChanged]) -> list[events_pb2.CatalogChanged]:
    return value


async def test_generated_sub_topics_are_counted(
    catalog: Stub, js: JetStreamContext, eventually: Eventually
) -> None:
    t = (await topic(catalog, "physics")).topic
    event = events_pb2.SubTopicsGenerated(generation_id="gen_1", main_topic_id=t.id, count=5)
    event_id = await deliver(js, SUBTOPICS_GENERATED, event)
    await deliver(js, SUBTOPICS_GENERATED, event, event_id)
    # A malformed event is rejected without retries and changes nothing.
    await deliver(
        js,
        SUBTOPICS_GENERATED,
        events_pb2.SubTopicsGenerated(generation_id="gen_x", main_topic_id=t.id, count=-4),
    )
    await deliver(js, SUBTOPICS_GENERATED, b"\xff\xff not protobuf")
    await deliver(
        js,
        SUBTOPICS_GENERATED,
        events_pb2.SubTopicsGenerated(generation_id="gen_2", main_topic_id=t.id, count=3),
    )
    after = await eventually(
        lambda: topic(catalog, t.slug), lambda d: d.topic.subtopic_count.generated >= 8
    )
    await asyncio.sleep(0.3)
    after = await topic(catalog, t.slug)
    assert after.topic.subtopic_count.generated == 8
    assert after.topic.subtopic_count.curated == len(after.sub_topics)
    assert after.topic.popularity_score > 0


async def test_ratings_average_latest_rating_per_article(
    catalog: Stub, js: JetStreamContext, eventually: Eventually
) -> None:
    detail = await topic(catalog, "digital-marketing")
    sub = detail.sub_topics[0]
    other = detail.sub_topics[1]

    def rated(session_id: str, rating: str, minute: int, **kw: object) -> Message:
        return events_pb2.FeedbackSubmitted(
            session_id=session_id,
            article_id=f"art_{session_id}",
            rating=rating,
            main_topic_id=detail.topic.id,
            curated_sub_topic_id=sub.id,
            occurred_at=at(minute),
            **kw,  # type: ignore[arg-type]
        )

    async def sub_rating() -> float:
        d = await topic(catalog, "digital-marketing")
        return d.sub_topics[0].avg_rating

    await deliver(js, FEEDBACK_SUBMITTED, rated("s1", "like", 1))
    assert await eventually(sub_rating, lambda r: r == 5.0) == 5.0
    await deliver(js, FEEDBACK_SUBMITTED, rated("s2", "dislike", 2))
    assert await eventually(sub_rating, lambda r: r == 3.0) == 3.0

    # s1 changes its mind: the like is replaced, not added to (mean of 1 and 1).
    replaced = rated("s1", "dislike", 3, previous_rating="like")
    replaced_id = await deliver(js, FEEDBACK_SUBMITTED, replaced)
    assert await eventually(sub_rating, lambda r: r == 1.0) == 1.0
    # ...delivered twice, a late (older) rating, an article of a generated sub-topic, and a
    # rating nobody defined: none of them moves the average.
    await deliver(js, FEEDBACK_SUBMITTED, replaced, replaced_id)
    await deliver(js, FEEDBACK_SUBMITTED, rated("s1", "like", 2))
    await deliver(
        js,
        FEEDBACK_SUBMITTED,
        events_pb2.FeedbackSubmitted(
            session_id="s9", article_id="art_g", rating="like", main_topic_id=detail.topic.id
        ),
    )
    await deliver(js, FEEDBACK_SUBMITTED, rated("s7", "meh", 4))
    await deliver(js, FEEDBACK_SUBMITTED, rated("s" * 60, "like", 4))  # id longer than stored
    # s3's like is the sentinel: when it shows, everything before it was handled.
    await deliver(js, FEEDBACK_SUBMITTED, rated("s3", "like", 5))
    expected = round((1 + 1 + 5) / 3, 1)
    assert await eventually(sub_rating, lambda r: r == expected) == expected
    await asyncio.sleep(0.3)
    final = await topic(catalog, "digital-marketing")
    assert final.sub_topics[0].avg_rating == expected
    assert final.sub_topics[1].avg_rating == 0  # the neighbour was never rated
    assert other.avg_rating == 0
    assert final.topic.popularity_score == pytest.approx(
        float(
            popularity_score(
                total_learners=0,
                avg_completion_rate=0,
                rating_count=3,
                rating_total=7,
                generated_count=0,
            )
        )
    )


async def test_completion_rate_averages_each_sessions_latest_value(
    catalog: Stub, js: JetStreamContext, eventually: Eventually
) -> None:
    t = (await topic(catalog, "philosophy")).topic

    def analytics(session_id: str, rate: float, minute: int) -> Message:
        return events_pb2.SessionAnalyticsUpdated(
            session_id=session_id, main_topic_id=t.id, completion_rate=rate, occurred_at=at(minute)
        )

    async def rate() -> float:
        return (await topic(catalog, t.slug)).topic.avg_completion_rate

    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c1", 0.5, 1))
    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c2", 1.0, 1))
    assert await eventually(rate, lambda r: r == 0.75) == 0.75
    update_id = await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c1", 0.9, 2))
    assert await eventually(rate, lambda r: r == 0.95) == 0.95
    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c1", 0.9, 2), update_id)
    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c1", 0.1, 1))  # late, older
    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c3", 1.7, 3))  # out of range
    await deliver(js, SESSION_ANALYTICS_UPDATED, analytics("c3", 0.2, 3))  # sentinel
    # (0.9 + 1.0 + 0.2) / 3: c1's latest value, c2, c3; the stale and invalid ones left out.
    assert await eventually(rate, lambda r: r == 0.7) == 0.7
    await asyncio.sleep(0.3)
    assert await rate() == 0.7


async def test_popular_orders_by_popularity_score(
    catalog: Stub, js: JetStreamContext, eventually: Eventually
) -> None:
    reply = await catalog.ListMainTopics(
        catalog_pb2.ListMainTopicsRequest(category="life", limit=100), timeout=5
    )
    quiet, busy = reply.items[0], reply.items[-1]
    assert quiet.id < busy.id
    for i in range(3):
        await deliver(
            js,
            SESSION_CREATED,
            events_pb2.SessionCreated(session_id=f"pop_{i}", main_topic_id=busy.id),
        )

    async def life_popular() -> catalog_pb2.ListMainTopicsResponse:
        return await catalog.ListMainTopics(
            catalog_pb2.ListMainTopicsRequest(category="life", popular=True, limit=100), timeout=5
        )

    ranked = await eventually(life_popular, lambda r: r.items[0].total_learners == 3)
    assert ranked.items[0].slug == busy.slug
    scores = [t.popularity_score for t in ranked.items]
    assert scores == sorted(scores, reverse=True)
    plain = await catalog.ListMainTopics(
        catalog_pb2.ListMainTopicsRequest(category="life", limit=100), timeout=5
    )
    assert plain.items[0].slug == quiet.slug  # without popular=true: catalog order


def test_popularity_formula_bounds_and_direction() -> None:
    def score(**kw: int | float) -> Decimal:
        base = {
            "total_learners": 0,
            "avg_completion_rate": 0.0,
            "rating_count": 0,
            "rating_total": 0,
            "generated_count": 0,
        }
        return popularity_score(**(base | kw))  # type: ignore[arg-type]

    assert score() == Decimal("0.00")
    top = score(
        total_learners=10**6,
        avg_completion_rate=1.0,
        rating_count=10**6,
        rating_total=5 * 10**6,
        generated_count=10**6,
    )
    assert Decimal("0.99") <= top <= Decimal("1.00")
    assert score(total_learners=100) < score(total_learners=1000)
    assert score(avg_completion_rate=0.2) < score(avg_completion_rate=0.8)
    # All dislikes add nothing; likes add more the more of them there are.
    assert score(rating_count=5, rating_total=5) == Decimal("0.00")
    assert score(rating_count=2, rating_total=10) < score(rating_count=50, rating_total=250)
    assert score(generated_count=10) < score(generated_count=500)
