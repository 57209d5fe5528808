"""realtime use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from infou_realtime import repository


async def connection_stats(session: AsyncSession) -> tuple[int, int]:
    """(active, total) WebSocket connections ever recorded."""
    return await repository.connection_counts(session)
