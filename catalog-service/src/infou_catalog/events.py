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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog import service
from infou_catalog.models import MainTopic, outbox, processed_events
from infou_libs import subjects
from infou_libs.consume import Route, event_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

E = TypeVar("E", bound=Message)


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


def _occurred_at(ts: Timestamp) -> dt.datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


async def on_session_created(session: AsyncSession, event: events_pb2.SessionCreated) -> None:
    topics = await service.record_session_created(
        session,
        main_topic_id=event.main_topic_id,
        curated_sub_topic_ids=event.curated_sub_topic_ids,
    )
    if topics:
        await announce_change(session, topics, reason="session_created")


async def on_subtopics_generated(
    session: AsyncSession, event: events_pb2.SubTopicsGenerated
) -> None:
    topics = await service.record_subtopics_generated(
        session, main_topic_id=event.main_topic_id, count=event.count
    )
    if topics:
        await announce_change(session, topics, reason="subtopics_generated")


async def on_feedback_submitted(session: AsyncSession, event: events_pb2.FeedbackSubmitted) -> None:
    topics = await service.record_rating(
        session,
        session_id=event.session_id,
        article_id=event.article_id,
        curated_sub_topic_id=event.curated_sub_topic_id,
        rating=event.rating,
        occurred_at=_occurred_at(event.occurred_at),
    )
    if topics:
        await announce_change(session, topics, reason="feedback")


async def on_session_analytics_updated(
    session: AsyncSession, event: events_pb2.SessionAnalyticsUpdated
) -> None:
    topics = await service.record_completion(
        session,
        session_id=event.session_id,
        main_topic_id=event.main_topic_id,
        completion_rate=event.completion_rate,
        occurred_at=_occurred_at(event.occurred_at),
    )
    if topics:
        await announce_change(session, topics, reason="analytics")


def _route(payload: type[E], handle: Callable[[AsyncSession, E], Awaitable[None]]) -> Route[E]:
    return Route(payload, handle)


# durable consumer name (also the idempotency key) → its subject and route.
_SUBSCRIPTIONS: tuple[tuple[str, str, Route[Any]], ...] = (
    (
        "catalog-session-created",
        subjects.SESSION_CREATED,
        _route(events_pb2.SessionCreated, on_session_created),
    ),
    (
        "catalog-subtopics-generated",
        subjects.SUBTOPICS_GENERATED,
        _route(events_pb2.SubTopicsGenerated, on_subtopics_generated),
    ),
    (
        "catalog-feedback-submitted",
        subjects.FEEDBACK_SUBMITTED,
        _route(events_pb2.FeedbackSubmitted, on_feedback_submitted),
    ),
    (
        "catalog-session-analytics",
        subjects.SESSION_ANALYTICS_UPDATED,
        _route(events_pb2.SessionAnalyticsUpdated, on_session_analytics_updated),
    ),
)


def statistics_consumers(
    js: JetStreamContext, sessions: async_sessionmaker[AsyncSession]
) -> Sequence[DurableConsumer]:
    """One durable consumer per consumed subject, on libs' consume path (an undecodable or
    invalid event is rejected, not retried)."""
    return [
        event_consumer(js, durable, {subject: route}, sessions, processed_events)
        for durable, subject, route in _SUBSCRIPTIONS
    ]
