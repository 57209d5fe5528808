"""Every SQL query of generation-service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation.models import GeneratedSubTopic, SubTopicGenerationRequest, WorkerHeartbeat


async def beat(session: AsyncSession, worker_id: str, hostname: str, concurrency: int) -> None:
    stmt = insert(WorkerHeartbeat).values(
        worker_id=worker_id, hostname=hostname, concurrency=concurrency
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[WorkerHeartbeat.worker_id], set_={"last_seen_at": func.now()}
        )
    )


async def forget_worker(session: AsyncSession, worker_id: str) -> None:
    await session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


async def count_alive(session: AsyncSession, fresh_within: dt.timedelta) -> int:
    cutoff = func.now() - fresh_within
    count = await session.scalar(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_seen_at > cutoff)
    )
    return int(count or 0)


# --- personalised sub-topics ------------------------------------------------------------------


async def add_subtopic_request(session: AsyncSession, request: SubTopicGenerationRequest) -> None:
    session.add(request)
    await session.flush()


async def subtopic_request(
    session: AsyncSession, generation_id: str, *, lock: bool = False
) -> SubTopicGenerationRequest | None:
    stmt = select(SubTopicGenerationRequest).where(
        SubTopicGenerationRequest.generation_batch_id == generation_id
    )
    if lock:
        stmt = stmt.with_for_update()
    result: SubTopicGenerationRequest | None = await session.scalar(stmt)
    return result


async def add_generated_sub_topics(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Inserts a batch; a row whose (batch, slug) exists already is skipped. Returns how many."""
    if not rows:
        return 0
    result = await session.execute(
        insert(GeneratedSubTopic)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=[GeneratedSubTopic.generation_batch_id, GeneratedSubTopic.slug]
        )
        .returning(GeneratedSubTopic.id)
    )
    return len(result.all())


async def generated_of_batch(
    session: AsyncSession, generation_id: str
) -> Sequence[GeneratedSubTopic]:
    rows = await session.scalars(
        select(GeneratedSubTopic)
        .where(GeneratedSubTopic.generation_batch_id == generation_id)
        .order_by(GeneratedSubTopic.position, GeneratedSubTopic.id)
    )
    return rows.all()


async def generated_by_ids(
    session: AsyncSession, ids: Sequence[int], public_ids: Sequence[str] = ()
) -> Sequence[GeneratedSubTopic]:
    """The sub-topics with these ids or public ids that have not expired, in id order."""
    rows = await session.scalars(
        select(GeneratedSubTopic)
        .where(
            or_(
                GeneratedSubTopic.id.in_(list(ids)),
                GeneratedSubTopic.public_id.in_(list(public_ids)),
            ),
            or_(GeneratedSubTopic.expires_at.is_(None), GeneratedSubTopic.expires_at > func.now()),
        )
        .order_by(GeneratedSubTopic.id)
    )
    return rows.all()


async def add_subtopic_feedback(
    session: AsyncSession, sub_topic_id: int, positive: int, negative: int
) -> bool:
    """Moves a generated sub-topic's feedback counts; False when there is no such sub-topic."""
    sub = await session.get(GeneratedSubTopic, sub_topic_id, with_for_update=True)
    if sub is None:
        return False
    sub.positive_feedback_count += positive
    sub.negative_feedback_count += negative
    sub.updated_at = func.now()
    await session.flush()
    return True
