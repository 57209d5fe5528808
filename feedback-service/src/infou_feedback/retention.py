"""Personal data expiry in feedback-service: old comments and referrers are erased.

Ratings, progress and session analytics stay: the statistics outlive the personal text.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from infou_feedback.models import ArticleFeedback, LearningProgressLog
from infou_libs.retention import rows_affected


async def sweep(
    db: AsyncSession,
    now: dt.datetime,  # noqa: ARG001 — the sweep signature libs' retention calls; unused here
    cutoff: dt.datetime,
) -> dict[str, int]:
    comments = await rows_affected(
        db,
        update(ArticleFeedback)
        .where(ArticleFeedback.updated_at < cutoff, ArticleFeedback.comments.is_not(None))
        .values(comments=None),
    )
    referrers = await rows_affected(
        db,
        update(LearningProgressLog)
        .where(
            LearningProgressLog.timestamp < cutoff,
            LearningProgressLog.referrer_url.is_not(None),
        )
        .values(referrer_url=None),
    )
    return {
        "article_feedback.comments_erased": comments,
        "learning_progress_logs.referrer_erased": referrers,
    }
