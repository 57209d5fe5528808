"""feedback use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from infou_feedback import repository
from infou_feedback.models import SessionAnalytics
from infou_libs.errors import NotFound


async def session_analytics(session: AsyncSession, session_id: str) -> SessionAnalytics:
    analytics = await repository.get_analytics(session, session_id)
    if analytics is None:
        raise NotFound(f"no analytics for session {session_id}", field="session_id")
    return analytics
