"""session use cases."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from infou_session import repository


@dataclass(frozen=True)
class SessionStats:
    active: int
    generating: int


async def session_stats(session: AsyncSession) -> SessionStats:
    counts = await repository.count_by_status(session)
    generating = counts.get("initializing", 0) + counts.get("generating", 0)
    return SessionStats(active=repository.active(counts), generating=generating)
