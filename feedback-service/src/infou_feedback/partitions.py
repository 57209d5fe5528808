"""Monthly partitions of learning_progress_logs, created ahead by the service itself.

The migration creates the partitioned parent and a DEFAULT partition, so no row is ever
refused. The service creates the partition of the current month and of the next
`months_ahead` months when it starts and once a day after that (idempotent). A month whose
rows already sit in the DEFAULT partition (written before its partition existed, e.g. by a
clock ahead or a back-fill) cannot simply be created: Postgres refuses a partition whose range
the DEFAULT partition holds rows of. So, in one transaction with the parent locked, those rows
are moved out of DEFAULT, the partition is created, and the rows go back in through the parent
(landing in the new partition, ids and timestamps unchanged).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_feedback.models import PARTITION_SCHEMA, SCHEMA, LearningProgressLog
from infou_libs.logging import get_logger

log = get_logger(__name__)

PARENT = f'"{SCHEMA}"."{LearningProgressLog.__tablename__}"'
DEFAULT_PARTITION = f"{LearningProgressLog.__tablename__}_default"
# Serialises partition creation across replicas (each replica runs the maintenance).
_PARTITION_LOCK = 72_114_601


def month_start(moment: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of the month `moment` falls in."""
    moment = moment.astimezone(dt.UTC)
    return dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)


def next_month(start: dt.datetime) -> dt.datetime:
    return dt.datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=dt.UTC)


def partition_name(start: dt.datetime) -> str:
    """learning_progress_logs_YYYYMM, as in PRD §4.6."""
    return f"{LearningProgressLog.__tablename__}_{start:%Y%m}"


def _literal(moment: dt.datetime) -> str:
    # DDL takes no bind parameters; the bound is built here from a datetime, never from input.
    return f"'{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}+00'"


async def ensure_month(db: AsyncSession, moment: dt.datetime) -> int | None:
    """Creates the partition of `moment`'s month in the caller's transaction.

    Returns None when it already existed, else how many rows moved into it from DEFAULT.
    """
    start = month_start(moment)
    end = next_month(start)
    name = partition_name(start)
    qualified = f'"{PARTITION_SCHEMA}"."{name}"'
    await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITION_LOCK})
    exists = await db.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": qualified})
    if exists:
        return None
    # No row may reach DEFAULT for this range between the move and the creation.
    await db.execute(text(f"LOCK TABLE {PARENT} IN ACCESS EXCLUSIVE MODE"))
    default = f'"{PARTITION_SCHEMA}"."{DEFAULT_PARTITION}"'
    bounds = {"lo": start, "hi": end}
    # Table names are this module's constants; the bounds are bind parameters.
    move_out = (
        "CREATE TEMPORARY TABLE feedback_moved_logs ON COMMIT DROP AS "  # noqa: S608
        f"WITH moved AS (DELETE FROM {default} "
        'WHERE "timestamp" >= :lo AND "timestamp" < :hi RETURNING *) '
        "SELECT * FROM moved"
    )
    await db.execute(text(move_out), bounds)
    await db.execute(
        text(
            f"CREATE TABLE {qualified} PARTITION OF {PARENT} "
            f"FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
        )
    )
    move_in = f"INSERT INTO {PARENT} SELECT * FROM feedback_moved_logs"  # noqa: S608
    moved = await db.execute(text(move_in))
    await db.execute(text("DROP TABLE feedback_moved_logs"))
    count = int(getattr(moved, "rowcount", 0) or 0)
    log.info("progress_partition_created", partition=name, moved_from_default=count)
    return count


async def ensure_ahead(
    sessions: async_sessionmaker[AsyncSession],
    months_ahead: int,
    now: dt.datetime | None = None,
) -> list[str]:
    """The partitions of this month and the next `months_ahead`; returns those created."""
    start = month_start(now or dt.datetime.now(dt.UTC))
    created = []
    for _ in range(months_ahead + 1):
        async with sessions() as db, db.begin():
            if await ensure_month(db, start) is not None:
                created.append(partition_name(start))
        start = next_month(start)
    return created


async def partitions(db: AsyncSession) -> list[str]:
    """The partitions of learning_progress_logs, DEFAULT included (for tests and operators)."""
    rows = await db.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname"
        ),
        {"parent": PARENT},
    )
    return [str(r[0]) for r in rows]


async def maintain(
    sessions: async_sessionmaker[AsyncSession], months_ahead: int, interval_seconds: float
) -> None:
    """Runs ensure_ahead every `interval_seconds` (a day by default) until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await ensure_ahead(sessions, months_ahead)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the DEFAULT partition keeps taking rows meanwhile
            log.warning("progress_partition_maintenance_failed", error=str(exc))
