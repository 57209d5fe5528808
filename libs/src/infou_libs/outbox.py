"""Transactional outbox and idempotent consumers.

A state change and the event it causes commit together: the event is a row in the service's
own `outbox` table, written in the use case's transaction. The relay publishes pending rows
to JetStream with Nats-Msg-Id = event id (JetStream drops a duplicate within its window) and
marks them sent. Consumers record each event id in `processed_events` in the same transaction
as their effect, so a redelivered event changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg
from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from infou_libs.crypto import EncryptedBytes
from infou_libs.logging import get_logger
from infou_libs.messaging import Outgoing, new_event_id, publish_batch
from infou_libs.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING
from infou_libs.telemetry import inject_headers

log = get_logger(__name__)


def outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The `outbox` and `processed_events` tables, in the service's own schema."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        # Events may carry learner input (a curriculum job's personalisation): ciphertext at rest.
        Column("payload", EncryptedBytes, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_pending",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return outbox, processed


def notify_channel(schema: str) -> str:
    return f"infou_outbox_{schema}"


async def add_event(
    session: AsyncSession,
    outbox: Table,
    subject: str,
    payload: Message,
    *,
    event_id: str | None = None,
) -> str:
    """Writes an event in the caller's transaction; it leaves with the commit, never before."""
    event_id = event_id or new_event_id()
    await add_events(session, outbox, [(subject, payload, event_id)])
    return event_id


NewRow = tuple[Table, Mapping[str, Any]]  # a row to insert: its table, its values by column key


async def add_events(
    session: AsyncSession,
    outbox: Table,
    events: Sequence[tuple[str, Message] | tuple[str, Message, str]],
    *,
    along: Sequence[NewRow] = (),
) -> list[str]:
    """Writes (subject, payload[, event id]) events in one statement; returns their event ids.

    `along` are rows (the state change the events announce) inserted by the same statement: a
    use case that is this one statement is atomic even without a transaction.
    """
    rows = [_outbox_row(*event) for event in events]
    inserts = [*along, *((outbox, row) for row in rows)]
    shape = tuple((table, tuple(values)) for table, values in inserts)
    params = {
        f"r{i}_{key}": value
        for i, (_, values) in enumerate(inserts)
        for key, value in values.items()
    }
    # One round trip: the rows and the notification (delivered on commit only: it wakes the
    # relay without polling).
    await session.execute(_inserts_statement(outbox, shape), params)
    return [row["event_id"] for row in rows]


@functools.lru_cache(maxsize=256)
def _inserts_statement(
    outbox: Table, shape: tuple[tuple[Table, tuple[str, ...]], ...]
) -> Select[Any]:
    # One statement object per shape, reused: SQLAlchemy then neither compiles it again nor
    # recomputes its cache key (a multi-row VALUES would not be cached at all).
    inserts: list[CTE] = []
    previous_event: CTE | None = None
    for i, (table, keys) in enumerate(shape):
        values = {key: bindparam(f"r{i}_{key}", type_=table.c[key].type) for key in keys}
        if table is not outbox:
            inserts.append(insert(table).values(values).cte(f"r{i}"))
            continue
        if previous_event is None:
            row = insert(table).values(values)
        else:
            # Each event's row is inserted after the previous one's (it selects from it), so
            # their ids, the relay's order, follow the order they were given in.
            row = insert(table).from_select(
                list(values), select(*values.values()).select_from(previous_event)
            )
        previous_event = row.returning(outbox.c.id).cte(f"r{i}")
        inserts.append(previous_event)
    channel = notify_channel(str(outbox.schema))
    return select(func.pg_notify(channel, "")).add_cte(*inserts)


def _outbox_row(subject: str, payload: Message, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or new_event_id(),
        "subject": subject,
        "payload": payload.SerializeToString(),
        "headers": inject_headers(),
    }


async def claim_event(
    session: AsyncSession, processed: Table, consumer: str, event_id: str
) -> bool:
    """Records an event as handled by `consumer`; False when it already was (a duplicate)."""
    if not event_id:
        return True
    result = await session.execute(
        _claim_statement(processed), {"consumer": consumer, "event_id": event_id}
    )
    return result.first() is not None


@functools.lru_cache(maxsize=32)
def _claim_statement(processed: Table) -> ReturningInsert[tuple[str]]:
    # Built once per table: SQLAlchemy reuses its cache key and compiled form.
    return (
        pg_insert(processed)
        .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"))
        .on_conflict_do_nothing()
        .returning(processed.c.event_id)
    )


async def claim_events(
    session: AsyncSession, processed: Table, consumer: str, event_ids: Collection[str]
) -> set[str]:
    """Records many events as handled by `consumer` in one statement; returns the ids that were
    not yet (the others are duplicates). Empty ids are not claimable and are left out."""
    ids = sorted({i for i in event_ids if i})
    if not ids:
        return set()
    # One array parameter (not a VALUES list): the same statement for any number of ids.
    rows = select(
        literal(consumer, String), func.unnest(bindparam("ids", ids, type_=ARRAY(String)))
    )
    result = await session.execute(
        pg_insert(processed)
        .from_select(["consumer", "event_id"], rows)
        .on_conflict_do_nothing()
        .returning(processed.c.event_id)
    )
    return set(result.scalars())


class OutboxRelay:
    """Publishes committed outbox rows to JetStream, in order, and marks them sent."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        js: JetStreamContext,
        database_url: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        retention: dt.timedelta = dt.timedelta(days=1),
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._js = js
        self._database_url = database_url
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._schema = str(outbox.schema)
        self._claim = self._claim_statement()

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def _listen(self) -> None:
        url = make_url(self._database_url).set(drivername="postgresql")
        try:
            self._listener = await asyncpg.connect(url.render_as_string(hide_password=False))
            await self._listener.add_listener(
                notify_channel(self._schema), lambda *_args: self._wake.set()
            )
        except Exception as exc:  # the relay still polls without notifications
            log.warning("outbox_listen_failed", schema=self._schema, error=str(exc))
            self._listener = None

    async def _run(self) -> None:
        cleaned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                sent = await self.relay_once()
                if loop.time() - cleaned_at > 600:
                    await self._clean()
                    cleaned_at = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_relay_failed", schema=self._schema, error=str(exc))
                sent = 0
                await asyncio.sleep(self._poll_interval)
            if sent >= self._batch_size:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def relay_once(self) -> int:
        """Publishes one batch of pending rows; returns how many were sent."""
        async with self._sessions() as session, session.begin():
            # Claimed and marked sent in one statement: the mark commits only once every event
            # of the batch is acked, and a failure rolls it back (the rows stay pending).
            rows = (await session.execute(self._claim)).all()
            if rows:
                await publish_batch(
                    self._js,
                    [
                        Outgoing(row.subject, bytes(row.payload), row.event_id, row.headers)
                        for row in rows
                    ],
                )
        for row in rows:
            EVENTS_PUBLISHED.labels(row.subject).inc()
        # The count ran in the claiming statement's snapshot, before these rows were marked.
        pending = rows[0].pending - len(rows) if rows else 0
        OUTBOX_PENDING.labels(self._schema).set(max(0, pending))
        return len(rows)

    def _claim_statement(self) -> Select[Any]:
        o = self._outbox
        unsent = o.c.published_at.is_(None)
        batch = (
            select(o.c.id)
            .where(unsent)
            .order_by(o.c.id)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        claimed = (
            update(o)
            .where(o.c.id.in_(batch.scalar_subquery()))
            .values(published_at=func.now())
            .returning(o.c.id, o.c.event_id, o.c.subject, o.c.payload, o.c.headers)
            .cte("claimed")
        )
        pending = select(func.count()).select_from(o).where(unsent).scalar_subquery()
        return select(claimed, pending.label("pending")).order_by(claimed.c.id)

    async def _clean(self) -> None:
        o = self._outbox
        cutoff = dt.datetime.now(dt.UTC) - self._retention
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(o).where(o.c.published_at.is_not(None), o.c.published_at < cutoff)
            )
