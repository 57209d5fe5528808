"""The outbox → relay → JetStream → consume path (infou_libs.consume), on real Postgres and NATS."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.consume import Route, event_consumer
from infou_libs.db import create_engine, schema_metadata, session_factory, unit_of_work
from infou_libs.messaging import EVENTS_STREAM, DurableConsumer, connect, ensure_streams, publish
from infou_libs.outbox import OutboxRelay, add_event, outbox_tables
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
async def nats(nats_url: str) -> AsyncIterator[tuple]:
    nc = await connect(nats_url, "test")
    js = nc.jetstream()
    await ensure_streams(js)
    yield nc, js
    await nc.close()


async def test_event_flows_once_from_one_schema_to_another(
    database_url: str, nats_url: str, nats
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

    async def after_commit(event: events_pb2.SessionCreated, result: str) -> None:
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


async def test_failing_handler_is_retried_then_reported(nats) -> None:
    _nc, js = nats
    suffix = uuid.uuid4().hex[:8]
    subject = f"events.test{suffix}.flaky"
    attempts: list[int] = []
    exhausted: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(msg: Msg) -> None:
        attempts.append(msg.metadata.num_delivered)
        raise ValueError("LLM said no")

    async def on_exhausted(msg: Msg, exc: BaseException) -> None:
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
