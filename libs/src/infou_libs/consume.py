"""The one way to consume an event: decode → claim → effect (one transaction) → after commit.

A service declares, per subject it consumes, a `Route` (payload type, effect, optional
after-commit hook) and hands its routes to `event_consumer` (a durable JetStream consumer) or
`consume_handler` (just its message handler):

    routes = {subjects.SESSION_CREATED: Route(events_pb2.SessionCreated, on_session_created)}
    consumer = event_consumer(js, "catalog-session-created", routes, sessions, processed_events)

For each message:

1. decode: the subject's route parses the payload; an unknown subject or an undecodable payload
   can never succeed, so it raises `PermanentError` (terminated at once, not retried);
2. claim: the event id is recorded in the service's `processed_events` under the consumer's
   name, in the effect's transaction; a duplicate changes nothing (no effect, no hook);
3. effect: `await route.effect(db, event)` in that transaction. An `InvalidArgument` it raises
   is permanent too; any other error rolls back the claim with the effect, and the consumer
   retries with backoff;
4. after commit: `await route.after_commit(event, result)` with the effect's return value (e.g.
   ephemeral progress messages that must never leave before the change is durable).

Slow work that must not hold a transaction open (an LLM call) goes in `route.prepare`: it runs
after decoding, only when the event id is not claimed yet, and its result replaces the event as
the effect's argument (the hook still gets the event). A consumer without a database (the
gateway's cache invalidation) uses `decoding_handler`: decode → effect, nothing to claim.

A consumer whose effect costs mostly round trips (counting statistics) declares `BatchRoute`s
and takes `batch_event_consumer`: the events that arrive together are decoded, de-duplicated
by event id, claimed in one statement and applied by one call of the route's effect, all in
one transaction, then acked together. A batch that fails is retried one message at a time on
the path above (the effect called with a list of one), so a poison message fails only itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.errors import InvalidArgument
from infou_libs.messaging import (
    BatchDurableConsumer,
    BatchHandler,
    DurableConsumer,
    Handler,
    PermanentError,
    event_id_of,
)
from infou_libs.metrics import EVENTS_CONSUMED
from infou_libs.outbox import claim_event, claim_events
from infou_libs.subjects import EVENTS_STREAM

E = TypeVar("E", bound=Message)


@dataclass(frozen=True)
class Route(Generic[E]):
    """How one subject is consumed: its payload type, its effect, what follows the commit."""

    payload: type[E]
    effect: Callable[[AsyncSession, Any], Awaitable[Any]]
    after_commit: Callable[[E, Any], Awaitable[None]] | None = None
    prepare: Callable[[E], Awaitable[Any]] | None = None


Routes = Mapping[str, Route[Any]]


def decode(msg: Msg, payload: type[E]) -> E:
    """The message's payload; a garbled one can never succeed, so it is not retried."""
    try:
        return payload.FromString(msg.data)
    except DecodeError as exc:
        raise PermanentError(f"undecodable {payload.__name__} on {msg.subject}: {exc}") from exc


async def already_claimed(
    sessions: async_sessionmaker[AsyncSession], processed: Table, consumer: str, event_id: str
) -> bool:
    """Whether `consumer` has committed its effect of this event already (a redelivery)."""
    if not event_id:
        return False
    async with sessions() as db:
        found = await db.scalar(
            select(processed.c.event_id).where(
                processed.c.consumer == consumer, processed.c.event_id == event_id
            )
        )
    return found is not None


def consume_handler(
    sessions: async_sessionmaker[AsyncSession],
    processed: Table,
    consumer: str,
    routes: Routes,
) -> Handler:
    """Applies each event once, by the route of its subject (see the module doc)."""

    async def handle(msg: Msg) -> None:
        route = routes.get(msg.subject)
        if route is None:
            raise PermanentError(f"unexpected subject {msg.subject}")
        event = decode(msg, route.payload)
        event_id = event_id_of(msg)
        argument: Any = event
        if route.prepare is not None:
            if await already_claimed(sessions, processed, consumer, event_id):
                EVENTS_CONSUMED.labels(consumer, "duplicate").inc()
                return
            argument = await route.prepare(event)
        async with sessions() as db, db.begin():
            if not await claim_event(db, processed, consumer, event_id):
                EVENTS_CONSUMED.labels(consumer, "duplicate").inc()
                return
            try:
                result = await route.effect(db, argument)
            except InvalidArgument as exc:
                raise PermanentError(f"invalid {msg.subject}: {exc.field}: {exc}") from exc
        EVENTS_CONSUMED.labels(consumer, "processed").inc()
        if route.after_commit is not None:
            await route.after_commit(event, result)

    return handle


def decoding_handler(payload: type[E], effect: Callable[[E], Awaitable[None]]) -> Handler:
    """Decode → effect, for a consumer with no database (its effect is idempotent by nature)."""

    async def handle(msg: Msg) -> None:
        await effect(decode(msg, payload))

    return handle


def event_consumer(
    js: JetStreamContext,
    durable: str,
    routes: Routes,
    sessions: async_sessionmaker[AsyncSession],
    processed: Table,
    *,
    stream: str = EVENTS_STREAM,
    concurrency: int = 1,
) -> DurableConsumer:
    """A durable consumer of the routes' subjects; its name is also the idempotency key."""
    return DurableConsumer(
        js=js,
        stream=stream,
        durable=durable,
        subjects=list(routes),
        handler=consume_handler(sessions, processed, durable, routes),
        concurrency=concurrency,
    )


@dataclass(frozen=True)
class BatchRoute(Generic[E]):
    """How one subject is consumed in batches: its payload type and an effect that applies
    many events (each claimed once, in arrival order) in the caller's transaction."""

    payload: type[E]
    effect: Callable[[AsyncSession, Sequence[E]], Awaitable[None]]

    def one_at_a_time(self) -> Route[E]:
        """The same effect on the one-message path (a batch of one)."""

        async def effect(db: AsyncSession, event: E) -> None:
            await self.effect(db, [event])

        return Route(self.payload, effect)


def batch_consume_handler(
    sessions: async_sessionmaker[AsyncSession],
    processed: Table,
    consumer: str,
    routes: Mapping[str, BatchRoute[Any]],
) -> BatchHandler:
    """Applies a batch of events in one transaction, each event id once (see the module doc);
    raises, changing nothing, when any message of the batch cannot be applied."""

    async def handle(msgs: Sequence[Msg]) -> None:
        batch: list[tuple[str, str, Message]] = []  # (subject, event id, event)
        for msg in msgs:
            route = routes.get(msg.subject)
            if route is None:
                raise PermanentError(f"unexpected subject {msg.subject}")
            batch.append((msg.subject, event_id_of(msg), decode(msg, route.payload)))
        async with sessions() as db, db.begin():
            fresh = await claim_events(db, processed, consumer, [i for _, i, _ in batch])
            by_subject: dict[str, list[Message]] = {}
            for subject, event_id, event in batch:
                if not event_id or event_id in fresh:
                    fresh.discard(event_id)  # a second copy in the batch is a duplicate
                    by_subject.setdefault(subject, []).append(event)
            for subject, events in by_subject.items():
                await routes[subject].effect(db, events)
        applied = sum(len(events) for events in by_subject.values())
        EVENTS_CONSUMED.labels(consumer, "processed").inc(applied)
        if applied < len(batch):
            EVENTS_CONSUMED.labels(consumer, "duplicate").inc(len(batch) - applied)

    return handle


def batch_event_consumer(
    js: JetStreamContext,
    durable: str,
    routes: Mapping[str, BatchRoute[Any]],
    sessions: async_sessionmaker[AsyncSession],
    processed: Table,
    *,
    stream: str = EVENTS_STREAM,
    batch_size: int = 64,
    batch_wait: float = 0.5,
) -> BatchDurableConsumer:
    """A durable consumer of the routes' subjects that applies the events arriving within
    `batch_wait` seconds (at most `batch_size`) together; its name is the idempotency key."""
    single = {subject: route.one_at_a_time() for subject, route in routes.items()}
    return BatchDurableConsumer(
        js=js,
        stream=stream,
        durable=durable,
        subjects=list(routes),
        handler=consume_handler(sessions, processed, durable, single),
        batch_handler=batch_consume_handler(sessions, processed, durable, routes),
        batch_size=batch_size,
        batch_wait=batch_wait,
    )
