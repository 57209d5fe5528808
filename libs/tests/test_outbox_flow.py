"""The outbox → relay → JetStream → consume path (infou_libs.consume), on real Postgres and NATS."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.consume import (
    BatchRoute,
    Route,
    batch_event_consumer,
    consume_handler,
    event_consumer,
)
from infou_libs.db import create_engine, schema_metadata, session_factory, unit_of_work
from infou_libs.errors import InvalidArgument
from infou_libs.messaging import (
    EVENT_ID_HEADER,
    EVENTS_STREAM,
    DurableConsumer,
    PermanentError,
    connect,
    ensure_streams,
    publish,
)
from infou_libs.outbox import OutboxRelay, add_event, add_events, outbox_tables
from infou_protos.events.v1 import events_pb2


def _tables(schema: str) -> tuple[MetaData, Table, Table, Table]:
    md = schema_metadata(schema)
    outbox, processed = outbox_tables(md)
    counter = Table(
        "counters", md, Column("name", String(50), primary_key=True), Column("value", Integer)
    )
    return md, outbox, processed, counter


async def _make_schema(
    database_url: str, schema: str
) -> tuple[async_sessionmaker[AsyncSession], Table, Table, Table]:
    md, outbox, processed, counter = _tables(schema)
    engine = create_engine(database_url, schema, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(md.create_all)
    return session_factory(engine), outbox, processed, counter


@pytest.fixture
async def nats(nats_url: str) -> AsyncIterator[tuple[NatsClient, JetStreamContext]]:
    nc = await connect(nats_url, "test")
    js = nc.jetstream()
    await ensure_streams(js)
    yield nc, js
    await nc.close()


@pytest.mark.usefixtures("nats_url")
async def test_event_flows_once_from_one_schema_to_another(
    database_url: str, nats: tuple[NatsClient, JetStreamContext]
) -> None:
    _nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    subject = f"events.test{suffix}.session_created"
    producer, outbox, _, _ = await _make_schema(database_url, f"prod_{suffix}")
    consumer_sessions, _, processed, counter = await _make_schema(database_url, f"cons_{suffix}")
    async with unit_of_work(consumer_sessions) as s:
        await s.execute(counter.insert().values(name="learners", value=0))

    async def apply(session: AsyncSession, event: events_pb2.SessionCreated) -> str:
        await session.execute(
            update(counter).where(counter.c.name == "learners").values(value=counter.c.value + 1)
        )
        return event.session_id

    committed: list[str] = []

    async def after_commit(event: events_pb2.SessionCreated, result: str) -> None:  # noqa: ARG001 — callback signature
        committed.append(result)

    route = Route(events_pb2.SessionCreated, apply, after_commit)
    consumer = event_consumer(js, f"test-{suffix}", {subject: route}, consumer_sessions, processed)
    await consumer.start()
    relay = OutboxRelay(producer, outbox, js, database_url, poll_interval=5.0)
    await relay.start()
    try:
        # A rolled-back use case leaves no event behind.
        async def failing_use_case() -> None:
            async with unit_of_work(producer) as s:
                await add_event(s, outbox, subject, events_pb2.SessionCreated(session_id="sess_x"))
                raise RuntimeError("use case failed")

        with pytest.raises(RuntimeError):
            await failing_use_case()
        async with unit_of_work(producer) as s:
            event_id = await add_event(
                s, outbox, subject, events_pb2.SessionCreated(session_id="sess_1")
            )
        # The same event delivered again (a relay crash before marking it sent) changes nothing.
        await asyncio.sleep(0.2)
        await publish(
            js, subject, events_pb2.SessionCreated(session_id="sess_1"), event_id=event_id
        )

        async def value() -> int:
            async with consumer_sessions() as s:
                return int(await s.scalar(select(counter.c.value)) or 0)

        for _ in range(100):  # the NOTIFY wakes the relay well before its 5 s poll
            if await value() == 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert await value() == 1
        async with producer() as s:
            pending = await s.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
            total = await s.scalar(select(func.count()).select_from(outbox))
        assert (pending, total) == (0, 1)
        async with consumer_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(processed)) == 1
        # The hook follows the one commit, never the duplicate.
        assert committed == ["sess_1"]
    finally:
        await relay.stop()
        await consumer.stop()


async def test_failing_handler_is_retried_then_reported(
    nats: tuple[NatsClient, JetStreamContext],
) -> None:
    _nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    subject = f"events.test{suffix}.flaky"
    attempts: list[int] = []
    exhausted: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(msg: Msg) -> None:
        attempts.append(msg.metadata.num_delivered)
        raise ValueError("LLM said no")

    async def on_exhausted(msg: Msg, exc: BaseException) -> None:  # noqa: ARG001 — callback signature
        exhausted.set_result(str(exc))

    consumer = DurableConsumer(
        js,
        EVENTS_STREAM,
        f"flaky-{suffix}",
        [subject],
        handler,
        on_exhausted=on_exhausted,
        backoff=(0.1, 0.2, 0.3),
    )
    await consumer.start()
    try:
        await publish(js, subject, b"payload")
        assert await asyncio.wait_for(exhausted, 15) == "LLM said no"
        # First delivery and three retries: never a fifth attempt.
        await asyncio.sleep(1.0)
        assert attempts == [1, 2, 3, 4]
    finally:
        await consumer.stop()


async def test_consume_path_rejects_what_can_never_succeed_and_claims_once(
    database_url: str,
) -> None:
    """Undecodable, unknown and invalid events are permanent (not retried) and leave no claim;
    `prepare` (the slow work outside the transaction) is skipped for an event already applied."""
    suffix = uuid.uuid4().hex[:8]
    sessions, _, processed, counter = await _make_schema(database_url, f"consume_{suffix}")
    async with unit_of_work(sessions) as s:
        await s.execute(counter.insert().values(name="learners", value=0))
    prepared: list[str] = []

    async def prepare(event: events_pb2.SessionCreated) -> str:
        prepared.append(event.session_id)
        return event.session_id

    async def apply(session: AsyncSession, session_id: str) -> None:
        if session_id == "sess_invalid":
            await session.execute(update(counter).values(value=counter.c.value + 100))
            raise InvalidArgument("no such session", field="session_id")
        await session.execute(update(counter).values(value=counter.c.value + 1))

    subject = f"events.test{suffix}.created"
    handle = consume_handler(
        sessions,
        processed,
        f"consume-{suffix}",
        {subject: Route(events_pb2.SessionCreated, apply, prepare=prepare)},
    )

    def message(data: bytes, event_id: str, on: str = subject) -> Msg:
        return Msg(_client=None, subject=on, data=data, headers={EVENT_ID_HEADER: event_id})  # type: ignore[arg-type]

    created = events_pb2.SessionCreated(session_id="sess_1").SerializeToString()
    with pytest.raises(PermanentError, match="undecodable"):
        await handle(message(b"\xff\xff not protobuf", "e-garbage"))
    with pytest.raises(PermanentError, match="unexpected subject"):
        await handle(message(created, "e-elsewhere", on=f"{subject}.other"))
    invalid = events_pb2.SessionCreated(session_id="sess_invalid").SerializeToString()
    with pytest.raises(PermanentError, match="session_id"):
        await handle(message(invalid, "e-invalid"))
    await handle(message(created, "e-1"))
    await handle(message(created, "e-1"))  # a redelivery: neither prepared nor applied again
    async with sessions() as s:
        assert await s.scalar(select(counter.c.value)) == 1
        claimed = (await s.scalars(select(processed.c.event_id))).all()
    assert claimed == ["e-1"]
    assert prepared == ["sess_invalid", "sess_1"]


async def test_batch_consumer_applies_a_batch_once_and_a_poison_message_alone(
    database_url: str, nats: tuple[NatsClient, JetStreamContext]
) -> None:
    """Waiting events are applied as one batch (one transaction, a copy of an event counted
    once); a batch with a message that can never succeed is retried one by one, so that
    message alone is rejected and the others still count exactly once."""
    _nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    sessions, _, processed, counter = await _make_schema(database_url, f"batch_{suffix}")
    async with unit_of_work(sessions) as s:
        await s.execute(counter.insert().values(name="learners", value=0))
    batches: list[int] = []

    async def apply(session: AsyncSession, events: Sequence[events_pb2.SessionCreated]) -> None:
        if any(e.session_id == "sess_invalid" for e in events):
            raise InvalidArgument("no such session", field="session_id")
        batches.append(len(events))
        await session.execute(update(counter).values(value=counter.c.value + len(events)))

    subject = f"events.test{suffix}.created"
    durable = f"batch-{suffix}"

    def batch_consumer() -> DurableConsumer:
        routes = {subject: BatchRoute(events_pb2.SessionCreated, apply)}
        return batch_event_consumer(js, durable, routes, sessions, processed, batch_wait=0.3)

    async def send(session_id: str, event_id: str | None = None) -> str:
        event_id = event_id or uuid.uuid4().hex
        event = events_pb2.SessionCreated(session_id=session_id)
        # A fresh Nats-Msg-Id: a copy JetStream's own de-duplication lets through.
        headers = {EVENT_ID_HEADER: event_id, "Nats-Msg-Id": uuid.uuid4().hex}
        await js.publish(subject, event.SerializeToString(), headers=headers)
        return event_id

    async def settled() -> tuple[int, int]:
        for _ in range(200):
            info = await js.consumer_info(EVENTS_STREAM, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        async with sessions() as s:
            value = int(await s.scalar(select(counter.c.value)) or 0)
            claimed = int(await s.scalar(select(func.count()).select_from(processed)) or 0)
        return value, claimed

    # Waiting before the start, so the first fetch takes them together.
    first = await send("sess_1")
    await send("sess_2")
    await send("sess_1", first)
    consumer = batch_consumer()
    await consumer.start()
    try:
        assert await settled() == (2, 2)
        assert batches == [2]  # one batch of the two distinct events
    finally:
        await consumer.stop()

    batches.clear()
    await send("sess_3")
    await send("sess_invalid")
    await js.publish(subject, b"\xff garbled", headers={EVENT_ID_HEADER: uuid.uuid4().hex})
    await send("sess_4")
    await send("sess_2", first)  # a copy of an event applied in the earlier batch
    consumer = batch_consumer()
    await consumer.start()
    try:
        assert await settled() == (4, 4)  # sess_3 and sess_4 once; the two bad ones rejected
        assert batches == [1, 1]  # after the failed batch: one by one
    finally:
        await consumer.stop()


async def test_batch_consumer_waits_batch_wait_for_what_follows_the_first_message(
    database_url: str, nats: tuple[NatsClient, JetStreamContext]
) -> None:
    _nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    sessions, _, processed, _ = await _make_schema(database_url, f"linger_{suffix}")
    batches: list[list[str]] = []

    async def apply(session: AsyncSession, events: Sequence[events_pb2.SessionCreated]) -> None:  # noqa: ARG001 — effect signature
        batches.append([e.session_id for e in events])

    subject = f"events.test{suffix}.created"
    routes = {subject: BatchRoute(events_pb2.SessionCreated, apply)}
    consumer = batch_event_consumer(
        js, f"linger-{suffix}", routes, sessions, processed, batch_wait=3.0
    )
    await consumer.start()
    try:
        await publish(js, subject, events_pb2.SessionCreated(session_id="sess_1"))
        for _ in range(100):  # the first is in the consumer's hands, not yet applied
            info = await js.consumer_info(EVENTS_STREAM, consumer.durable)
            if info.num_ack_pending == 1:
                break
            await asyncio.sleep(0.02)
        assert batches == []
        await asyncio.sleep(0.5)  # well past the first message, well within batch_wait
        await publish(js, subject, events_pb2.SessionCreated(session_id="sess_2"))
        for _ in range(200):
            if batches:
                break
            await asyncio.sleep(0.05)
        assert batches == [["sess_1", "sess_2"]]
    finally:
        await consumer.stop()


async def test_relay_publishes_a_batch_in_commit_order_and_marks_it_sent(
    database_url: str, nats: tuple[NatsClient, JetStreamContext]
) -> None:
    """Events of several commits leave in batches, in the order they were written, each once."""
    nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    subject = f"events.test{suffix}.ordered"
    producer, outbox, _, _ = await _make_schema(database_url, f"order_{suffix}")
    for first in range(0, 12, 4):
        async with unit_of_work(producer) as s:
            # One event alone, then three in one statement: the order they were given in.
            await add_event(s, outbox, subject, events_pb2.SessionCreated(session_id=str(first)))
            await add_events(
                s,
                outbox,
                [
                    (subject, events_pb2.SessionCreated(session_id=str(n)))
                    for n in range(first + 1, first + 4)
                ],
            )
    received: list[str] = []

    async def on_message(msg: Msg) -> None:
        received.append(events_pb2.SessionCreated.FromString(msg.data).session_id)

    sub = await nc.subscribe(subject, cb=on_message)
    relay = OutboxRelay(producer, outbox, js, database_url, batch_size=5)
    try:
        assert [await relay.relay_once() for _ in range(4)] == [5, 5, 2, 0]
        for _ in range(100):
            if len(received) == 12:
                break
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
    assert received == [str(n) for n in range(12)]
    async with producer() as s:
        pending = await s.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    assert pending == 0
