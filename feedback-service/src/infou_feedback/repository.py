"""Every SQL query of feedback-service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from infou_feedback.models import SessionAnalytics


async def get_analytics(session: AsyncSession, session_id: str) -> SessionAnalytics | None:
    return await session.get(SessionAnalytics, session_id)
