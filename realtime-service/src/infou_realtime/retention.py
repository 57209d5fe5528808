"""Personal data expiry in realtime-service: old connections lose their IP and user agent.

The rows stay (connection statistics count them).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.retention import rows_affected
from infou_realtime.models import WebsocketConnection


async def sweep(
    db: AsyncSession,
    now: dt.datetime,  # noqa: ARG001 — the sweep signature libs' retention calls; unused here
    cutoff: dt.datetime,
) -> dict[str, int]:
    anonymised = await rows_affected(
        db,
        update(WebsocketConnection)
        .where(
            WebsocketConnection.connected_at < cutoff,
            or_(
                WebsocketConnection.client_ip.is_not(None),
                WebsocketConnection.user_agent.is_not(None),
            ),
        )
        .values(client_ip=None, user_agent=None),
    )
    return {"websocket_connections.anonymised": anonymised}
