"""Every SQL query of realtime-service."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from infou_realtime.models import WebsocketConnection


async def connection_counts(session: AsyncSession) -> tuple[int, int]:
    total, active = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(WebsocketConnection.is_active.is_(True)),
            ).select_from(WebsocketConnection)
        )
    ).one()
    return int(active), int(total)
