"""What session-service publishes and consumes.

Publishes, through its outbox (in the transaction of the change):

- events.session.created (SessionCreated) when a session is created (catalog counts it);
- jobs.curriculum.generate, jobs.article.generate, jobs.article.convert: the generation jobs,
  each carrying its task's input (generation_input.py).

Consumes generation's results (results.py) with one durable consumer on libs' one consume path
(infou_libs.consume): each event claimed by id in `session.processed_events` in the same
transaction as its effect (a redelivery changes nothing), and each session's results applied
one at a time (its row is locked); a result of a generation attempt a retry replaced changes
nothing (results.py):

- events.generation.curriculum_generated (CurriculumGenerated)
- events.generation.article_generated (ArticleGenerated)
- events.generation.article_converted (ArticleConverted)
- events.generation.task_failed (GenerationFailed)

After each commit the progress messages of the change go out on `progress.session.<id>`.

Listens (plain subscription, every replica) to events.catalog.changed, to drop the main topics
it keeps for creates (topics.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs import subjects
from infou_libs.consume import Route, Routes, event_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_protos.events.v1 import events_pb2
from infou_session import repository, results
from infou_session.models import processed_events
from infou_session.progress import ProgressMessage, ProgressPublisher
from infou_session.topics import TopicDirectory

log = get_logger(__name__)

CONSUMER = "session-generation-results"

# The event argument is the subject's own message type.
Apply = Callable[[AsyncSession, Any], Awaitable[list[ProgressMessage]]]


def progress_routes(
    publisher: ProgressPublisher, handlers: dict[str, tuple[type[Any], Apply]]
) -> Routes:
    """Routes whose effects return the session's progress, published once they committed."""

    async def after_commit(event: Any, messages: list[ProgressMessage]) -> None:
        await publisher.publish(str(event.session_id), messages)

    return {
        subject: Route(payload, _writing_changes_at_once(apply), after_commit)
        for subject, (payload, apply) in handlers.items()
    }


def _writing_changes_at_once(apply: Apply) -> Apply:
    """The result's changes (its session row, its article) leave in one statement."""

    async def effect(db: AsyncSession, event: Any) -> list[ProgressMessage]:
        messages = await apply(db, event)
        await repository.write_changes(db)
        return messages

    return effect


HANDLERS: dict[str, tuple[type[Any], Apply]] = {
    subjects.CURRICULUM_GENERATED: (
        events_pb2.CurriculumGenerated,
        results.on_curriculum_generated,
    ),
    subjects.ARTICLE_GENERATED: (events_pb2.ArticleGenerated, results.on_article_generated),
    subjects.ARTICLE_CONVERTED: (events_pb2.ArticleConverted, results.on_article_converted),
    subjects.TASK_FAILED: (events_pb2.GenerationFailed, results.on_generation_failed),
}


def result_consumer(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    publisher: ProgressPublisher,
    concurrency: int,
) -> DurableConsumer:
    routes = progress_routes(publisher, HANDLERS)
    return event_consumer(js, CONSUMER, routes, sessions, processed_events, concurrency=concurrency)


async def watch_catalog(nc: NatsClient, directory: TopicDirectory) -> None:
    """Each replica drops its kept topics on `events.catalog.changed` (topics.py).

    A plain subscription, not a durable consumer: every replica must see every change, and one
    missed while this replica was down is covered by the topics' expiry.
    """

    async def on_message(msg: Msg) -> None:
        try:
            event = events_pb2.CatalogChanged.FromString(msg.data)
        except DecodeError:
            log.warning("catalog_change_undecodable")
            directory.forget()
            return
        directory.on_catalog_changed(event)

    await nc.subscribe(subjects.CATALOG_CHANGED, cb=on_message)
