"""What catalog-service publishes and consumes.

Publishes `events.catalog.changed` (through the outbox) whenever curated content or a
published statistic changes, so the gateway drops the affected cached responses at once.

Consumes, each with its own durable consumer and idempotent handler (claimed by event id in
`catalog.processed_events`, in the same transaction as the change it causes):

- events.session.created (SessionCreated): total_learners, usage_count
- events.generation.subtopics_generated (SubTopicsGenerated): subtopic_count.generated
- events.feedback.submitted (FeedbackSubmitted): avg_rating of a curated sub-topic
- events.feedback.session_analytics_updated (SessionAnalyticsUpdated): avg_completion_rate

popularity_score is recomputed after each (service.popularity_score documents the formula).

SessionCreated (one per create, the bulk of this work) is counted a batch at a time: the first
event and those arriving within `INFOU_CATALOG_STATS_BATCH_SECONDS` after it are claimed and
counted in one transaction of a few statements, whatever their number (libs'
`batch_event_consumer`).

Statistics are exact per event, but their announcements are coalesced
(`INFOU_CATALOG_STATS_ANNOUNCE_SECONDS`, 0 = every event): a topic announces at once when it
has not announced within the window, otherwise it is marked pending, and `announce_pending`
(a periodic task on every replica; row locks keep replicas apart) announces it once the
window has passed. The state lives on the topic row, so a restart loses no pending change.
Curated content changes (seed) always announce at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog import service
from infou_catalog.models import MainTopic, outbox, processed_events
from infou_libs import subjects
from infou_libs.consume import BatchRoute, Route, batch_event_consumer, event_consumer
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)


async def announce_change(
    session: AsyncSession,
    topics: Iterable[MainTopic],
    *,
    reason: str,
    levels_changed: bool = False,
) -> None:
    """Writes CatalogChanged to the outbox in the caller's transaction."""
    topics = sorted(topics, key=lambda t: t.id)
    now = timestamp()
    await add_event(
        session,
        outbox,
        subjects.CATALOG_CHANGED,
        events_pb2.CatalogChanged(
            main_topic_ids=[t.id for t in topics],
            main_topic_slugs=[t.slug for t in topics],
            levels_changed=levels_changed,
            reason=reason,
            occurred_at=now,
        ),
    )


async def announce_statistics(
    session: AsyncSession, topics: Sequence[MainTopic], *, reason: str, window_seconds: float
) -> None:
    """A statistic of `topics` (locked FOR UPDATE by the caller) changed: announces the topics
    that have not announced within the window, marks the others pending for the sweep."""
    if window_seconds <= 0:
        await announce_change(session, topics, reason=reason)
        return
    now = await session.scalar(select(func.now()))
    assert now is not None
    cutoff = now - dt.timedelta(seconds=window_seconds)
    due = [t for t in topics if t.stats_announced_at is None or t.stats_announced_at <= cutoff]
    for t in topics:
        t.stats_announce_pending = t not in due
    if due:
        for t in due:
            t.stats_announced_at = now
        await announce_change(session, due, reason=reason)


async def announce_pending(session: AsyncSession, window_seconds: float) -> int:
    """Announces, in one CatalogChanged, the pending topics whose window has passed; topics
    another replica is handling (locked) are left to it. Returns how many were announced."""
    cutoff = func.now() - dt.timedelta(seconds=window_seconds)
    topics = list(
        await session.scalars(
            select(MainTopic)
            .where(
                MainTopic.stats_announce_pending,
                or_(MainTopic.stats_announced_at.is_(None), MainTopic.stats_announced_at <= cutoff),
            )
            .order_by(MainTopic.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not topics:
        return 0
    now = await session.scalar(select(func.now()))
    for t in topics:
        t.stats_announce_pending = False
        t.stats_announced_at = now
    await announce_change(session, topics, reason="statistics")
    return len(topics)


async def run_announcer(sessions: async_sessionmaker[AsyncSession], window_seconds: float) -> None:
    """Sweeps pending statistics announcements every window until cancelled, so a change is
    announced at most about two windows after it happened; a failed sweep is retried."""
    while True:
        await asyncio.sleep(window_seconds)
        try:
            async with unit_of_work(sessions) as session:
                announced = await announce_pending(session, window_seconds)
            if announced:
                log.info("catalog_stats_announced", topics=announced)
        except Exception:
            log.exception("catalog_stats_announce_failed")


def _occurred_at(ts: Timestamp) -> dt.datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


async def on_sessions_created(
    session: AsyncSession, events: Sequence[events_pb2.SessionCreated], *, window_seconds: float = 0
) -> None:
    """Counts a batch of SessionCreated events (each a distinct event id) at once."""
    changed = await service.record_sessions_created(
        session,
        [service.SessionStarted(e.main_topic_id, e.curated_sub_topic_ids) for e in events],
    )
    if window_seconds <= 0:  # every event announces its own change
        for topics in changed:
            if topics:
                await announce_change(session, topics, reason="session_created")
        return
    union = {t.id: t for topics in changed for t in topics}
    if union:
        await announce_statistics(
            session, list(union.values()), reason="session_created", window_seconds=window_seconds
        )


async def on_subtopics_generated(
    session: AsyncSession, event: events_pb2.SubTopicsGenerated, *, window_seconds: float = 0
) -> None:
    topics = await service.record_subtopics_generated(
        session, main_topic_id=event.main_topic_id, count=event.count
    )
    if topics:
        await announce_statistics(
            session, topics, reason="subtopics_generated", window_seconds=window_seconds
        )


async def on_feedback_submitted(
    session: AsyncSession, event: events_pb2.FeedbackSubmitted, *, window_seconds: float = 0
) -> None:
    topics = await service.record_rating(
        session,
        session_id=event.session_id,
        article_id=event.article_id,
        curated_sub_topic_id=event.curated_sub_topic_id,
        rating=event.rating,
        occurred_at=_occurred_at(event.occurred_at),
    )
    if topics:
        await announce_statistics(session, topics, reason="feedback", window_seconds=window_seconds)


async def on_session_analytics_updated(
    session: AsyncSession, event: events_pb2.SessionAnalyticsUpdated, *, window_seconds: float = 0
) -> None:
    topics = await service.record_completion(
        session,
        session_id=event.session_id,
        main_topic_id=event.main_topic_id,
        completion_rate=event.completion_rate,
        occurred_at=_occurred_at(event.occurred_at),
    )
    if topics:
        await announce_statistics(
            session, topics, reason="analytics", window_seconds=window_seconds
        )


# A statistics handler: (transaction, event or batch of events, *, window_seconds) → None.
Handler = Callable[..., Awaitable[None]]

# durable consumer name (also the idempotency key) → its subject, payload and handler.
# Counted a batch at a time (one per create: the bulk of the work), the handler takes a list.
_BATCHED: tuple[tuple[str, str, type[Message], Handler], ...] = (
    (
        "catalog-session-created",
        subjects.SESSION_CREATED,
        events_pb2.SessionCreated,
        on_sessions_created,
    ),
)
# One event at a time.
_ONE_BY_ONE: tuple[tuple[str, str, type[Message], Handler], ...] = (
    (
        "catalog-subtopics-generated",
        subjects.SUBTOPICS_GENERATED,
        events_pb2.SubTopicsGenerated,
        on_subtopics_generated,
    ),
    (
        "catalog-feedback-submitted",
        subjects.FEEDBACK_SUBMITTED,
        events_pb2.FeedbackSubmitted,
        on_feedback_submitted,
    ),
    (
        "catalog-session-analytics",
        subjects.SESSION_ANALYTICS_UPDATED,
        events_pb2.SessionAnalyticsUpdated,
        on_session_analytics_updated,
    ),
)


def statistics_consumers(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    announce_seconds: float = 0,
    batch_seconds: float = 0.5,
) -> Sequence[DurableConsumer]:
    """One durable consumer per consumed subject, on libs' consume path (an undecodable or
    invalid event is rejected, not retried); announcements coalesced per `announce_seconds`;
    the batched subjects count the events that arrive within `batch_seconds` together."""
    batched = [
        batch_event_consumer(
            js,
            durable,
            {
                subject: BatchRoute(
                    payload, functools.partial(handle, window_seconds=announce_seconds)
                )
            },
            sessions,
            processed_events,
            batch_wait=batch_seconds,
        )
        for durable, subject, payload, handle in _BATCHED
    ]
    one_by_one = [
        event_consumer(
            js,
            durable,
            {subject: Route(payload, functools.partial(handle, window_seconds=announce_seconds))},
            sessions,
            processed_events,
        )
        for durable, subject, payload, handle in _ONE_BY_ONE
    ]
    return [*batched, *one_by_one]
