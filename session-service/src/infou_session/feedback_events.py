"""What session-service takes from feedback-service's events (one durable consumer, each event
claimed by id in `session.processed_events` in the transaction of its effect, the session's
row locked):

- events.feedback.progress_recorded (ProgressRecorded): the learner's progress. The event
  carries the session's totals after the entry (feedback-service owns the logs), so
  completed_articles and total_time_spent are set, never added to, and only ever grow: a
  redelivered or late event changes nothing. The current article and last_accessed_at follow
  the newest entry (an older one arriving late leaves them); a completed or skipped article
  makes the next one current.
- events.feedback.difficulty_adjusted (DifficultyAdjusted): adaptive difficulty (decided by
  feedback-service, whose service.py documents the rule) moved the learner a level. Each listed
  unread article is converted to the new level by conversion.py, the same claim as
  GET /articles/{id}/convert (a ready variant is reused, a failed one retried), and the
  session's watchers get a `difficulty_adjusted` message naming each article's conversion, whose
  `conversion_complete` follows as usual.
"""

from __future__ import annotations

import datetime as dt

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs import subjects
from infou_libs.consume import event_consumer
from infou_libs.levels import LEVELS
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer, PermanentError
from infou_protos.events.v1 import events_pb2
from infou_session import conversion, progress, repository
from infou_session.events import progress_routes
from infou_session.models import LearningSession, processed_events
from infou_session.progress import ProgressMessage, ProgressPublisher

log = get_logger(__name__)

CONSUMER = "session-feedback"

# Done with the article: the next one is where the learner is.
MOVES_ON = ("completed", "skipped")


def _occurred(event: events_pb2.ProgressRecorded | events_pb2.DifficultyAdjusted) -> dt.datetime:
    if event.occurred_at.seconds or event.occurred_at.nanos:
        return event.occurred_at.ToDatetime(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


async def _session(db: AsyncSession, session_id: str) -> LearningSession | None:
    session = await repository.session_by_id(db, session_id, for_update=True)
    if session is None:
        log.warning("feedback_for_unknown_session", session_id=session_id)
        return None
    if session.expires_at <= dt.datetime.now(dt.UTC):
        log.info("feedback_for_expired_session", session_id=session_id)
        return None
    return session


async def on_progress_recorded(
    db: AsyncSession, event: events_pb2.ProgressRecorded
) -> list[ProgressMessage]:
    """Sets the session's progress from the learner's latest entry."""
    session = await _session(db, event.session_id)
    if session is None:
        return []
    session.completed_articles = max(session.completed_articles or 0, event.completed_articles)
    session.total_time_spent = max(session.total_time_spent or 0, event.total_time_spent)
    occurred = _occurred(event)
    if session.last_accessed_at is None or occurred >= session.last_accessed_at:
        session.last_accessed_at = occurred
        article = await repository.article_by_id(db, event.article_id)
        if article is not None and article.session_id == session.id:
            moves_on = event.action in MOVES_ON and article.next_article_id
            session.current_article_id = article.next_article_id if moves_on else article.id
    return []


async def on_difficulty_adjusted(
    db: AsyncSession, event: events_pb2.DifficultyAdjusted
) -> list[ProgressMessage]:
    """Converts the unread articles to the new level and tells the watchers."""
    session = await _session(db, event.session_id)
    if session is None:
        return []
    if event.to_level not in LEVELS:
        raise PermanentError(f"unknown level {event.to_level!r}")
    articles = {a.id: a for a in await repository.articles_of(db, session.id)}
    moved = [
        await conversion.convert_for_difficulty(db, session, articles[article_id], event.to_level)
        for article_id in event.article_ids
        if article_id in articles
    ]
    log.info(
        "difficulty_adjusted",
        session_id=session.id,
        from_level=event.from_level,
        to_level=event.to_level,
        articles=len(moved),
    )
    message = (
        "difficulty_adjusted",
        {
            "session_id": session.id,
            "from_level": event.from_level,
            "to_level": event.to_level,
            "direction": event.direction,
            "reason": event.reason,
            "articles": moved,
            "occurred_at": _occurred(event).isoformat(),
        },
    )
    return progress.stamp(session, [message])


def feedback_consumer(
    js: JetStreamContext, sessions: async_sessionmaker[AsyncSession], publisher: ProgressPublisher
) -> DurableConsumer:
    routes = progress_routes(
        publisher,
        {
            subjects.PROGRESS_RECORDED: (events_pb2.ProgressRecorded, on_progress_recorded),
            subjects.DIFFICULTY_ADJUSTED: (events_pb2.DifficultyAdjusted, on_difficulty_adjusted),
        },
    )
    return event_consumer(js, CONSUMER, routes, sessions, processed_events)
