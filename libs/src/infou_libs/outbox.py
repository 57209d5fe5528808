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
from collections.abc import Collection

import asyncpg
from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
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

from infou_libs.crypto import EncryptedBytes
from infou_libs.logging import get_logger
from infou_libs.messaging import new_event_id, publish
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
    written = (
        insert(outbox)
        .values(
            event_id=event_id,
            subject=subject,
            payload=payload.SerializeToString(),
            headers=inject_headers(),
        )
        .returning(outbox.c.event_id)
        .cte("written")
    )
    # One round trip: the row and the notification (delivered on commit only: it wakes the
    # relay without polling).
    await session.execute(
        select(func.pg_notify(notify_channel(str(outbox.schema)), "")).select_from(written)
    )
    return event_id


async def claim_event(
    session: AsyncSession, processed: Table, consumer: str, event_id: str
) -> bool:
    """Records an event as handled by `consumer`; False when it already was (a duplicate)."""
    if not event_id:
        return True
    result = await session.execute(
        pg_insert(processed)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(processed.c.event_id)
    )
    return result.first() is not None


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
        o = self._outbox
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(o.c.id, o.c.event_id, o.c.subject, o.c.payload, o.c.headers)
                    .where(o.c.published_at.is_(None))
                    .order_by(o.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await publish(
                    self._js,
                    row.subject,
                    bytes(row.payload),
                    event_id=row.event_id,
                    headers=dict(row.headers or {}),
                )
                EVENTS_PUBLISHED.labels(row.subject).inc()
            if rows:
                await session.execute(
                    update(o)
                    .where(o.c.id.in_([r.id for r in rows]))
                    .values(published_at=func.now())
                )
            pending = await session.scalar(
                select(func.count()).select_from(o).where(o.c.published_at.is_(None))
            )
        OUTBOX_PENDING.labels(self._schema).set(max(0, int(pending or 0) - len(rows)))
        return len(rows)

    async def _clean(self) -> None:
        o = self._outbox
        cutoff = dt.datetime.now(dt.UTC) - self._retention
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(o).where(o.c.published_at.is_not(None), o.c.published_at < cutoff)
            )
