"""Every SQL query of feedback-service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Integer, and_, case, cast, distinct, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infou_feedback.models import (
    ArticleFeedback,
    LearningProgressLog,
    SessionAnalytics,
    TrackedArticle,
    TrackedSession,
)
from infou_feedback.session_access import Access


async def track_session(db: AsyncSession, access: Access) -> tuple[TrackedSession, bool]:
    """Stores what session-service said of the session and locks its row until the end of the
    transaction; True when a fact changed (or the session is new here)."""
    values = {
        "main_topic_id": access.main_topic_id,
        "session_level": access.session_level,
        "adaptive_difficulty": access.adaptive_difficulty,
        "total_articles": access.total_articles,
        "article_ids": list(access.article_ids),
    }
    await db.execute(
        insert(TrackedSession)
        .values(session_id=access.session_id, current_level=access.session_level, **values)
        .on_conflict_do_nothing(index_elements=[TrackedSession.session_id])
    )
    row = await db.scalar(
        select(TrackedSession)
        .where(TrackedSession.session_id == access.session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    changed = any(getattr(row, name) != value for name, value in values.items())
    if changed:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = dt.datetime.now(dt.UTC)
        await db.flush()
    return row, changed


async def track_article(db: AsyncSession, access: Access) -> None:
    values = {
        "session_id": access.session_id,
        "level": access.level,
        "sub_topic_type": access.sub_topic_type,
        "sub_topic_id": access.sub_topic_id,
        "word_count": access.word_count,
    }
    await db.execute(
        insert(TrackedArticle)
        .values(article_id=access.article_id, **values)
        .on_conflict_do_update(index_elements=[TrackedArticle.article_id], set_=values)
    )


async def feedback_of(db: AsyncSession, session_id: str, article_id: str) -> ArticleFeedback | None:
    result: ArticleFeedback | None = await db.scalar(
        select(ArticleFeedback).where(
            ArticleFeedback.session_id == session_id, ArticleFeedback.article_id == article_id
        )
    )
    return result


async def add(db: AsyncSession, *rows: object) -> None:
    db.add_all(rows)
    await db.flush()


async def logs_of(
    db: AsyncSession, session_id: str, *, since: dt.datetime | None = None
) -> Sequence[LearningProgressLog]:
    """The session's progress entries, oldest first."""
    query = select(LearningProgressLog).where(LearningProgressLog.session_id == session_id)
    if since is not None:
        query = query.where(LearningProgressLog.timestamp >= since)
    rows = await db.scalars(query.order_by(LearningProgressLog.timestamp, LearningProgressLog.id))
    return rows.all()


@dataclass(frozen=True)
class Reading:
    time_spent: int
    scroll_depth: Decimal | None


async def reading_of(db: AsyncSession, session_id: str, article_id: str) -> Reading:
    """Seconds spent on an article and the deepest scroll, over its progress entries."""
    row = (
        await db.execute(
            select(
                func.coalesce(func.sum(LearningProgressLog.time_spent_seconds), 0),
                func.max(LearningProgressLog.scroll_depth),
            ).where(
                LearningProgressLog.session_id == session_id,
                LearningProgressLog.article_id == article_id,
            )
        )
    ).one()
    return Reading(int(row[0]), row[1])


@dataclass(frozen=True)
class LogTotals:
    completed_articles: int
    total_time_spent: int
    articles_with_entries: int
    avg_engagement: Decimal | None
    level_switches: int


async def log_totals(db: AsyncSession, session_id: str) -> LogTotals:
    log = LearningProgressLog
    reading = log.action != "level_switched"
    row = (
        await db.execute(
            select(
                func.count(distinct(case((log.action == "completed", log.article_id)))),
                func.coalesce(func.sum(log.time_spent_seconds), 0),
                func.count(distinct(case((reading, log.article_id)))),
                func.avg(log.engagement_score),
                func.count().filter(log.action == "level_switched"),
            ).where(log.session_id == session_id)
        )
    ).one()
    return LogTotals(int(row[0]), int(row[1]), int(row[2]), row[3], int(row[4]))


async def most_used_level(db: AsyncSession, session_id: str) -> str | None:
    """The level of most reading entries; a tie goes to the level used last."""
    log = LearningProgressLog
    row = (
        await db.execute(
            select(log.level)
            .where(
                log.session_id == session_id, log.level.is_not(None), log.action != "level_switched"
            )
            .group_by(log.level)
            .order_by(func.count().desc(), func.max(log.timestamp).desc())
            .limit(1)
        )
    ).first()
    return str(row[0]) if row else None


@dataclass(frozen=True)
class FeedbackTotals:
    count: int
    positive: int
    negative: int
    avg_difficulty: Decimal | None


async def feedback_totals(db: AsyncSession, session_id: str) -> FeedbackTotals:
    f = ArticleFeedback
    difficulty = case(
        (f.difficulty_perceived == "too_easy", 1),
        (f.difficulty_perceived == "appropriate", 2),
        (f.difficulty_perceived == "too_hard", 3),
    )
    row = (
        await db.execute(
            select(
                func.count(),
                func.count().filter(f.rating == "like"),
                func.count().filter(f.rating == "dislike"),
                func.avg(cast(difficulty, Integer)),
            ).where(f.session_id == session_id)
        )
    ).one()
    return FeedbackTotals(int(row[0]), int(row[1]), int(row[2]), row[3])


async def avg_word_count(db: AsyncSession, session_id: str, *, liked: bool) -> Decimal | None:
    """Mean length of the session's liked articles, or (liked=False) of its completed ones."""
    a = TrackedArticle
    if liked:
        chosen = select(ArticleFeedback.article_id).where(
            ArticleFeedback.session_id == session_id, ArticleFeedback.rating == "like"
        )
    else:
        chosen = select(LearningProgressLog.article_id).where(
            LearningProgressLog.session_id == session_id,
            LearningProgressLog.action == "completed",
        )
    value: Decimal | None = await db.scalar(
        select(func.avg(a.word_count)).where(
            a.session_id == session_id, a.word_count > 0, a.article_id.in_(chosen)
        )
    )
    return value


async def recent_difficulty(
    db: AsyncSession, session_id: str, since: dt.datetime | None, limit: int
) -> list[str]:
    """The latest difficulty ratings (one per article, newest first) given after `since`."""
    f = ArticleFeedback
    query = select(f.difficulty_perceived).where(
        f.session_id == session_id, f.difficulty_perceived.is_not(None)
    )
    if since is not None:
        query = query.where(f.updated_at > since)
    rows = await db.scalars(query.order_by(f.updated_at.desc(), f.id.desc()).limit(limit))
    return [str(r) for r in rows.all()]


async def read_article_ids(db: AsyncSession, session_id: str) -> set[str]:
    """Articles the learner is done with: completed, skipped or rated."""
    log = LearningProgressLog
    logged = await db.scalars(
        select(log.article_id)
        .where(and_(log.session_id == session_id, log.action.in_(("completed", "skipped"))))
        .distinct()
    )
    rated = await db.scalars(
        select(ArticleFeedback.article_id).where(ArticleFeedback.session_id == session_id)
    )
    return set(logged.all()) | set(rated.all())


async def get_analytics(
    db: AsyncSession, session_id: str, *, for_update: bool = False
) -> SessionAnalytics | None:
    query = select(SessionAnalytics).where(SessionAnalytics.session_id == session_id)
    if for_update:
        query = query.with_for_update()
    result: SessionAnalytics | None = await db.scalar(query)
    return result
