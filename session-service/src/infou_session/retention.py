"""Personal data expiry in session-service: expired sessions go, old learner input is erased."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.retention import rows_affected
from infou_session.models import LearningSession


async def sweep(db: AsyncSession, now: dt.datetime, cutoff: dt.datetime) -> dict[str, int]:
    """Deletes sessions past expiry (articles and variants cascade); erases older input."""
    deleted = await rows_affected(
        db, delete(LearningSession).where(LearningSession.expires_at < now)
    )
    erased = await rows_affected(
        db,
        update(LearningSession)
        .where(
            LearningSession.created_at < cutoff,
            LearningSession.personalization_settings.is_not(None),
        )
        .values(personalization_settings=None),
    )
    return {
        "learning_sessions.deleted": deleted,
        "learning_sessions.personalization_erased": erased,
    }
