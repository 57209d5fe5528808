"""Every SQL query of session-service."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from infou_session.models import ACTIVE_STATUSES, LearningSession


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(LearningSession.status, func.count())
        .where(LearningSession.expires_at > func.now())
        .group_by(LearningSession.status)
    )
    return {status: int(count) for status, count in rows.all()}


def active(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
