"""Every SQL query of realtime-service."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
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


async def register(
    session: AsyncSession,
    connection_id: str,
    session_id: str,
    client_ip: str | None,
    user_agent: str | None,
    gateway_id: str | None,
) -> None:
    await session.execute(
        insert(WebsocketConnection)
        .values(
            connection_id=connection_id,
            session_id=session_id,
            client_ip=client_ip,
            user_agent=user_agent,
            gateway_id=gateway_id,
            is_active=True,
        )
        .on_conflict_do_nothing(index_elements=[WebsocketConnection.connection_id])
    )


async def close(session: AsyncSession, connection_id: str, reason: str) -> None:
    await session.execute(
        update(WebsocketConnection)
        .where(
            WebsocketConnection.connection_id == connection_id,
            WebsocketConnection.is_active.is_(True),
        )
        .values(is_active=False, disconnect_reason=reason)
    )


async def touch(session: AsyncSession, connection_id: str) -> None:
    await session.execute(
        update(WebsocketConnection)
        .where(WebsocketConnection.connection_id == connection_id)
        .values(last_ping_at=func.now())
    )
