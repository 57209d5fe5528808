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


async def register_many(session: AsyncSession, rows: list[dict[str, str | None]]) -> None:
    """Inserts many connection rows in one statement (each dict: connection_id, session_id,
    client_ip, user_agent, gateway_id)."""
    if rows:
        await session.execute(
            insert(WebsocketConnection)
            .values([{**row, "is_active": True} for row in rows])
            .on_conflict_do_nothing(index_elements=[WebsocketConnection.connection_id])
        )


async def touch_many(session: AsyncSession, connection_ids: list[str]) -> None:
    # clock_timestamp(): later than connected_at even when the row was inserted in this transaction.
    if connection_ids:
        await session.execute(
            update(WebsocketConnection)
            .where(WebsocketConnection.connection_id.in_(connection_ids))
            .values(last_ping_at=func.clock_timestamp())
        )


async def close_many(session: AsyncSession, reasons: dict[str, list[str]]) -> None:
    """Closes connections, grouped by reason (reason → connection ids)."""
    for reason, connection_ids in reasons.items():
        await session.execute(
            update(WebsocketConnection)
            .where(
                WebsocketConnection.connection_id.in_(connection_ids),
                WebsocketConnection.is_active.is_(True),
            )
            .values(is_active=False, disconnect_reason=reason)
        )
