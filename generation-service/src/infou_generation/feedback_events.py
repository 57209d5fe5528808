"""Learners' ratings of the articles of generated sub-topics: the quality statistics of
generated_sub_topics (positive_feedback_count, negative_feedback_count).

Consumes events.feedback.submitted (FeedbackSubmitted) with one durable consumer, each event
claimed by id in `generation.processed_events` in the transaction of its effect. A rating
counts once per (session, article): an event that replaced an earlier rating names it
(previous_rating) and moves the count instead of adding (like → dislike: one positive fewer,
one negative more). The changes commute, so the counts are right whatever order the events
are applied in. Articles of curated sub-topics are the catalog's to rate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation import repository
from infou_generation.models import processed_events
from infou_libs.logging import get_logger
from infou_libs.messaging import EVENTS_STREAM, DurableConsumer, PermanentError
from infou_libs.outbox import idempotent_handler
from infou_libs.runtime import Runtime
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

FEEDBACK_SUBMITTED = "events.feedback.submitted"
CONSUMER = "generation-feedback"


def rating_change(rating: str, previous_rating: str) -> tuple[int, int]:
    """(positive, negative) change of one rating that replaces `previous_rating` (or none)."""
    positive = (rating == "like") - (previous_rating == "like")
    negative = (rating == "dislike") - (previous_rating == "dislike")
    return positive, negative


async def on_feedback_submitted(db: AsyncSession, event: events_pb2.FeedbackSubmitted) -> None:
    if event.generated_sub_topic_id <= 0:
        return
    positive, negative = rating_change(event.rating, event.previous_rating)
    if not positive and not negative:
        return
    if not await repository.add_subtopic_feedback(
        db, event.generated_sub_topic_id, positive, negative
    ):
        log.info("feedback_for_unknown_sub_topic", sub_topic_id=event.generated_sub_topic_id)


async def _apply(db: AsyncSession, msg: Msg) -> None:
    try:
        event = events_pb2.FeedbackSubmitted.FromString(msg.data)
    except DecodeError as exc:
        raise PermanentError(f"undecodable FeedbackSubmitted: {exc}") from exc
    if event.rating not in ("like", "dislike"):
        raise PermanentError(f"unknown rating {event.rating!r}")
    await on_feedback_submitted(db, event)


def handler(rt: Runtime) -> Callable[[Msg], Awaitable[None]]:
    return idempotent_handler(rt.sessions, processed_events, CONSUMER, _apply)


def feedback_consumer(rt: Runtime) -> DurableConsumer:
    return DurableConsumer(
        js=rt.js,
        stream=EVENTS_STREAM,
        durable=CONSUMER,
        subjects=[FEEDBACK_SUBMITTED],
        handler=handler(rt),
    )
