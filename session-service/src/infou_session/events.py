"""What session-service publishes and consumes.

Publishes, through its outbox (in the transaction of the change):

- events.session.created (SessionCreated) when a session is created (catalog counts it);
- jobs.curriculum.generate, jobs.article.generate, jobs.article.convert: the generation jobs,
  each carrying its task's input (generation_input.py).

Consumes generation's results with one durable consumer, each event claimed by id in
`session.processed_events` in the same transaction as its effect (a redelivery changes
nothing), and each session's results applied one at a time (its row is locked):

- events.generation.curriculum_generated (CurriculumGenerated)
- events.generation.article_generated (ArticleGenerated)
- events.generation.article_converted (ArticleConverted)
- events.generation.task_failed (GenerationFailed)

After each commit the progress messages of the change go out on `progress.session.<id>`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.messaging import EVENTS_STREAM, DurableConsumer, PermanentError, event_id_of
from infou_libs.metrics import EVENTS_CONSUMED
from infou_libs.outbox import claim_event
from infou_protos.events.v1 import events_pb2
from infou_session import service
from infou_session.models import processed_events
from infou_session.progress import ProgressMessage, ProgressPublisher

CURRICULUM_GENERATED = "events.generation.curriculum_generated"
ARTICLE_GENERATED = "events.generation.article_generated"
ARTICLE_CONVERTED = "events.generation.article_converted"
TASK_FAILED = "events.generation.task_failed"

CONSUMER = "session-generation-results"

# The event argument is the subject's own message type.
Apply = Callable[[AsyncSession, Any], Awaitable[list[ProgressMessage]]]

Handlers = dict[str, tuple[type[Message], Apply]]

_HANDLERS: Handlers = {
    CURRICULUM_GENERATED: (events_pb2.CurriculumGenerated, service.on_curriculum_generated),
    ARTICLE_GENERATED: (events_pb2.ArticleGenerated, service.on_article_generated),
    ARTICLE_CONVERTED: (events_pb2.ArticleConverted, service.on_article_converted),
    TASK_FAILED: (events_pb2.GenerationFailed, service.on_generation_failed),
}


def dispatching_handler(
    sessions: async_sessionmaker[AsyncSession],
    publisher: ProgressPublisher,
    handlers: Handlers,
    consumer: str,
) -> Callable[[Msg], Awaitable[None]]:
    """Applies one event once (claimed by id in its transaction, by the handler of its subject),
    then publishes the progress it caused."""

    async def handle(msg: Msg) -> None:
        if msg.subject not in handlers:
            raise PermanentError(f"unexpected subject {msg.subject}")
        kind, apply = handlers[msg.subject]
        try:
            event = kind.FromString(msg.data)
        except DecodeError as exc:
            raise PermanentError(f"undecodable {msg.subject}: {exc}") from exc
        session_id = str(getattr(event, "session_id", ""))
        async with sessions() as db, db.begin():
            if not await claim_event(db, processed_events, consumer, event_id_of(msg)):
                EVENTS_CONSUMED.labels(consumer, "duplicate").inc()
                return
            messages = await apply(db, event)
        EVENTS_CONSUMED.labels(consumer, "processed").inc()
        await publisher.publish(session_id, messages)

    return handle


def result_consumer(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    publisher: ProgressPublisher,
    concurrency: int,
) -> DurableConsumer:
    return DurableConsumer(
        js=js,
        stream=EVENTS_STREAM,
        durable=CONSUMER,
        subjects=list(_HANDLERS),
        handler=dispatching_handler(sessions, publisher, _HANDLERS, CONSUMER),
        concurrency=concurrency,
    )
