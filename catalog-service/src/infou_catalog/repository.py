"""Every SQL query of catalog-service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
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
    return await _lock(session, MainTopic.id.in_(ids))


async def lock_topics_of(
    session: AsyncSession, topic_ids: Iterable[int], curated_ids: Iterable[int]
) -> list[MainTopic]:
    """lock_topics of the topics named and of those the curated sub-topics belong to, in one
    statement."""
    owners = select(CuratedSubTopic.main_topic_id).where(CuratedSubTopic.id.in_(list(curated_ids)))
    return await _lock(session, or_(MainTopic.id.in_(list(topic_ids)), MainTopic.id.in_(owners)))


async def _lock(session: AsyncSession, which: ColumnElement[bool]) -> list[MainTopic]:
    rows = await session.scalars(
        select(MainTopic)
        .where(which)
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


async def add_usage(session: AsyncSession, uses: Mapping[int, int]) -> dict[int, int]:
    """Adds `uses[id]` to each curated sub-topic's usage_count in one statement; returns the
    main topic of each sub-topic found."""
    if not uses:
        return {}
    ids, counts = zip(*sorted(uses.items()), strict=True)
    # Two array parameters (not a VALUES list) keep the statement the same for any batch, so
    # SQLAlchemy compiles it once.
    added = (
        func.unnest(
            bindparam("ids", list(ids), type_=ARRAY(Integer)),
            bindparam("counts", list(counts), type_=ARRAY(Integer)),
        )
        .table_valued("id", "n")
        .render_derived(name="added")
    )
    rows = await session.execute(
        update(CuratedSubTopic)
        .where(CuratedSubTopic.id == added.c.id)
        .values(usage_count=CuratedSubTopic.usage_count + added.c.n)
        .returning(CuratedSubTopic.id, CuratedSubTopic.main_topic_id)
        .execution_options(synchronize_session=False)
    )
    return {int(curated_id): int(topic_id) for curated_id, topic_id in rows}


async def get_rating(
    session: AsyncSession, session_id: str, article_id: str
) -> CuratedRating | None:
    return await session.get(CuratedRating, (session_id, article_id), with_for_update=True)


async def curated_by_id(session: AsyncSession, curated_id: int) -> CuratedSubTopic | None:
    return await session.get(CuratedSubTopic, curated_id, populate_existing=True)


async def topic_rating_sums(
    session: AsyncSession, topic_ids: Iterable[int]
) -> dict[int, tuple[int, int]]:
    """(ratings counted, sum of their scores) over each topic's curated sub-topics; a topic
    without curated sub-topics is left out."""
    rows = await session.execute(
        select(
            CuratedSubTopic.main_topic_id,
            func.sum(CuratedSubTopic.rating_count),
            func.sum(CuratedSubTopic.rating_total),
        )
        .where(CuratedSubTopic.main_topic_id.in_(list(topic_ids)))
        .group_by(CuratedSubTopic.main_topic_id)
    )
    return {int(topic_id): (int(n), int(total)) for topic_id, n, total in rows}


async def get_completion(session: AsyncSession, session_id: str) -> SessionCompletion | None:
    return await session.get(SessionCompletion, session_id, with_for_update=True)
