"""Personal data expiry: each service's sweep runs periodically, one replica at a time.

A sweep deletes or anonymises what is older than `INFOU_PERSONAL_DATA_TTL_DAYS` (and what has
expired) in one transaction holding a Postgres advisory lock, so replicas never sweep at once.
Sweeps only touch rows that still hold personal data, so a second run changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Delete, Update

from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)

# (transaction, now, cutoff) → rows changed per "table.action"
Sweep = Callable[[AsyncSession, dt.datetime, dt.datetime], Awaitable[dict[str, int]]]

RETENTION_ROWS = Counter(
    "infou_retention_rows_total",
    "Rows deleted or anonymised by the personal-data retention job",
    ["service", "target"],
)


def lock_key(service: str) -> int:
    """The advisory lock one service's sweeps take (stable across processes)."""
    return zlib.crc32(f"infou-retention:{service}".encode())


async def rows_affected(db: AsyncSession, statement: Update | Delete) -> int:
    result = cast(CursorResult[Any], await db.execute(statement))
    return int(result.rowcount or 0)


async def sweep_once(
    service: str,
    sessions: async_sessionmaker[AsyncSession],
    sweep: Sweep,
    ttl_days: int,
    now: dt.datetime | None = None,
) -> dict[str, int] | None:
    """One sweep; None when another replica holds the lock (it is sweeping)."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=ttl_days)
    async with unit_of_work(sessions) as db:
        locked = await db.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(service)}
        )
        if not locked:
            log.info("retention_skipped", reason="another replica is sweeping")
            return None
        removed = await sweep(db, now, cutoff)
    for target, count in removed.items():
        RETENTION_ROWS.labels(service, target).inc(count)
    log.info("retention_swept", cutoff=cutoff.isoformat(), rows=removed)
    return removed


async def run_periodically(
    service: str,
    sessions: async_sessionmaker[AsyncSession],
    sweep: Sweep,
    ttl_days: int,
    interval_seconds: float,
) -> None:
    """Sweeps now and then every interval until cancelled; a failed sweep is retried later."""
    while True:
        try:
            await sweep_once(service, sessions, sweep, ttl_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("retention_failed", error=str(exc) or type(exc).__name__)
        await asyncio.sleep(interval_seconds)
