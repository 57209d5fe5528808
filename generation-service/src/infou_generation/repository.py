"""Every SQL query of generation-service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation.models import WorkerHeartbeat


async def beat(session: AsyncSession, worker_id: str, hostname: str, concurrency: int) -> None:
    stmt = insert(WorkerHeartbeat).values(
        worker_id=worker_id, hostname=hostname, concurrency=concurrency
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[WorkerHeartbeat.worker_id], set_={"last_seen_at": func.now()}
        )
    )


async def forget_worker(session: AsyncSession, worker_id: str) -> None:
    await session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


async def count_alive(session: AsyncSession, fresh_within: dt.timedelta) -> int:
    cutoff = func.now() - fresh_within
    count = await session.scalar(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_seen_at > cutoff)
    )
    return int(count or 0)
