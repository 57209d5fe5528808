"""Every SQL query of catalog-service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import any_, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from infou_catalog.models import (
    CuratedRating,
    CuratedSubTopic,
    Level,
    MainTopic,
    SessionCompletion,
)

# One advisory lock id for seeding: two replicas starting at once take turns.
_SEED_LOCK = 72_114_003


async def list_levels(session: AsyncSession) -> Sequence[Level]:
    return (await session.scalars(select(Level).order_by(Level.order_num))).all()


async def levels_by_code(session: AsyncSession) -> dict[str, Level]:
    return {level.code: level for level in await list_levels(session)}


async def level_exists(session: AsyncSession, code: str) -> bool:
    return (await session.scalar(select(Level.code).where(Level.code == code))) is not None


async def topics_by_slug(session: AsyncSession) -> dict[str, MainTopic]:
    return {t.slug: t for t in (await session.scalars(select(MainTopic))).all()}


async def sub_topics_by_slug(session: AsyncSession) -> dict[str, CuratedSubTopic]:
    return {s.slug: s for s in (await session.scalars(select(CuratedSubTopic))).all()}


async def lock_seed(session: AsyncSession) -> None:
    """Serialises seed runs until the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SEED_LOCK})


# ── reads ──────────────────────────────────────────────────────────────────────────────


async def count_main_topics(session: AsyncSession, category: str | None) -> int:
    query = select(func.count()).select_from(MainTopic)
    if category:
        query = query.where(MainTopic.category == category)
    return int(await session.scalar(query) or 0)


async def list_main_topics(
    session: AsyncSession, *, category: str | None, popular: bool, limit: int, offset: int
) -> Sequence[MainTopic]:
    query = select(MainTopic)
    if category:
        query = query.where(MainTopic.category == category)
    if popular:
        query = query.order_by(
            MainTopic.popularity_score.desc(), MainTopic.total_learners.desc(), MainTopic.id
        )
    else:
        query = query.order_by(MainTopic.id)
    return (await session.scalars(query.limit(limit).offset(offset))).all()


async def curated_counts(session: AsyncSession, topic_ids: Iterable[int]) -> dict[int, int]:
    ids = list(topic_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(CuratedSubTopic.main_topic_id, func.count())
        .where(CuratedSubTopic.main_topic_id.in_(ids))
        .group_by(CuratedSubTopic.main_topic_id)
    )
    return {int(topic_id): int(n) for topic_id, n in rows}


async def main_topic_by_slug(session: AsyncSession, slug: str) -> MainTopic | None:
    return await session.scalar(select(MainTopic).where(MainTopic.slug == slug))


async def main_topic_by_id(session: AsyncSession, topic_id: int) -> MainTopic | None:
    return await session.get(MainTopic, topic_id)


async def curated_of_topic(
    session: AsyncSession, topic_id: int, *, level: str | None = None, limit: int | None = None
) -> Sequence[CuratedSubTopic]:
    query = select(CuratedSubTopic).where(CuratedSubTopic.main_topic_id == topic_id)
    if level:
        query = query.where(any_(CuratedSubTopic.levels) == level)
    query = query.order_by(CuratedSubTopic.position, CuratedSubTopic.id)
    if limit is not None:
        query = query.limit(limit)
    return (await session.scalars(query)).all()


async def curated_by_ids(session: AsyncSession, ids: Iterable[int]) -> Sequence[CuratedSubTopic]:
    return (
        await session.scalars(select(CuratedSubTopic).where(CuratedSubTopic.id.in_(list(ids))))
    ).all()


# ── statistics (writes) ────────────────────────────────────────────────────────────────


async def lock_topics(session: AsyncSession, topic_ids: Iterable[int]) -> list[MainTopic]:
    """Loads topics FOR UPDATE, in id order, so concurrent statistics handlers never deadlock.

    Every statistics write to a topic or to its curated sub-topics happens under this lock.
    """
    ids = sorted(set(topic_ids))
    if not ids:
        return []
    rows = await session.scalars(
        select(MainTopic)
        .where(MainTopic.id.in_(ids))
        .order_by(MainTopic.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def topic_ids_of_curated(session: AsyncSession, ids: Iterable[int]) -> set[int]:
    rows = await session.scalars(
        select(CuratedSubTopic.main_topic_id).where(CuratedSubTopic.id.in_(list(ids)))
    )
    return set(rows.all())


async def add_usage(session: AsyncSession, curated_ids: Iterable[int]) -> None:
    await session.execute(
        update(CuratedSubTopic)
        .where(CuratedSubTopic.id.in_(list(curated_ids)))
        .values(usage_count=CuratedSubTopic.usage_count + 1)
    )


async def get_rating(
    session: AsyncSession, session_id: str, article_id: str
) -> CuratedRating | None:
    return await session.get(CuratedRating, (session_id, article_id), with_for_update=True)


async def curated_by_id(session: AsyncSession, curated_id: int) -> CuratedSubTopic | None:
    return await session.get(CuratedSubTopic, curated_id, populate_existing=True)


async def topic_rating_sums(session: AsyncSession, topic_id: int) -> tuple[int, int]:
    """(ratings counted, sum of their scores) over a topic's curated sub-topics."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(CuratedSubTopic.rating_count), 0),
                func.coalesce(func.sum(CuratedSubTopic.rating_total), 0),
            ).where(CuratedSubTopic.main_topic_id == topic_id)
        )
    ).one()
    return int(row[0]), int(row[1])


async def get_completion(session: AsyncSession, session_id: str) -> SessionCompletion | None:
    return await session.get(SessionCompletion, session_id, with_for_update=True)
