"""Every SQL query of generation-service.

Each function runs in the caller's transaction and never commits: the use case that calls it
opens and commits the unit of work (see where each one is opened and why: events.py for the
jobs and consumers, llm/router.py and budget.py for the LLM calls' bookkeeping).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from infou_generation.models import (
    BudgetAdmission,
    ContentAdaptation,
    ContentCache,
    GeneratedSubTopic,
    LLMBudgetDay,
    LLMBudgetReservation,
    LLMCall,
    SubTopicGenerationRequest,
    WorkerHeartbeat,
)


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


# --- the LLM cost ledger -----------------------------------------------------------------------


async def add_llm_call(session: AsyncSession, values: dict[str, Any]) -> int:
    return int(
        (await session.execute(insert(LLMCall).values(**values).returning(LLMCall.id))).scalar_one()
    )


async def update_llm_call(session: AsyncSession, row_id: int, values: dict[str, Any]) -> bool:
    """Completes a `started` ledger row; False when there is none by that id."""
    result = await session.execute(
        update(LLMCall)
        .where(LLMCall.id == row_id, LLMCall.status == "started")
        .values(**values)
        .returning(LLMCall.id)
    )
    return result.scalar_one_or_none() is not None


async def llm_call_totals(
    session: AsyncSession, *, session_id: str | None, generation_id: str | None
) -> Row[int, int, int, int, Decimal]:
    """(provider calls, input, output and cached tokens, cost) of a session or a generation."""
    stmt = select(
        # Provider calls only: a cache hit made none.
        func.count().filter(LLMCall.status != "cache_hit"),
        func.coalesce(func.sum(LLMCall.input_tokens), 0),
        func.coalesce(func.sum(LLMCall.output_tokens), 0),
        func.coalesce(func.sum(LLMCall.cached_tokens), 0),
        func.coalesce(func.sum(LLMCall.cost_usd), 0),
    )
    if session_id is not None:
        stmt = stmt.where(LLMCall.session_id == session_id)
    if generation_id is not None:
        stmt = stmt.where(LLMCall.generation_id == generation_id)
    return (await session.execute(stmt)).one()


# --- the daily LLM budget ------------------------------------------------------------------------


async def hold_budget(
    session: AsyncSession, day: dt.date, amount: Decimal, limit: Decimal
) -> Decimal | None:
    """Adds `amount` to the day's holds if it fits under `limit`; the day's spend, or None.

    One conditional UPDATE of the day's row: Postgres serialises concurrent ones on the row
    lock and re-checks the condition after waiting, so no two holds overrun the limit.
    """
    days = LLMBudgetDay
    await session.execute(
        insert(days)
        .values(day=day, limit_usd=limit)
        .on_conflict_do_nothing(index_elements=[days.day])
    )
    spent = (
        await session.execute(
            update(days)
            .where(days.day == day, days.spent_usd + days.reserved_usd + amount <= limit)
            .values(reserved_usd=days.reserved_usd + amount, limit_usd=limit, updated_at=func.now())
            .returning(days.spent_usd)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    return None if spent is None else Decimal(spent)


async def add_budget_reservation(
    session: AsyncSession,
    reservation_id: str,
    day: dt.date,
    amount: Decimal,
    provider: str,
    task: str,
    hold: dt.timedelta,
) -> None:
    await session.execute(
        insert(LLMBudgetReservation).values(
            id=reservation_id,
            day=day,
            amount_usd=amount,
            provider=provider,
            task=task,
            expires_at=func.now() + hold,
        )
    )


async def drop_budget_reservation(session: AsyncSession, reservation_id: str) -> Decimal | None:
    """Deletes a hold; what it held, or None when it is gone (expired and given back)."""
    held = (
        await session.execute(
            delete(LLMBudgetReservation)
            .where(LLMBudgetReservation.id == reservation_id)
            .returning(LLMBudgetReservation.amount_usd)
        )
    ).scalar_one_or_none()
    return None if held is None else Decimal(held)


async def settle_budget_day(
    session: AsyncSession, day: dt.date, released: Decimal, spent: Decimal
) -> Row[Decimal, Decimal, dt.datetime | None] | None:
    """Moves `released` out of the day's holds and adds `spent`; (spent, limit, warned_at)."""
    days = LLMBudgetDay
    return (
        await session.execute(
            update(days)
            .where(days.day == day)
            .values(
                reserved_usd=func.greatest(days.reserved_usd - released, 0),
                spent_usd=days.spent_usd + spent,
                updated_at=func.now(),
            )
            .returning(days.spent_usd, days.limit_usd, days.warned_at)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()


async def mark_budget_warned(session: AsyncSession, day: dt.date) -> bool:
    """Records the day's spending warning; False when another process recorded it first."""
    first = (
        await session.execute(
            update(LLMBudgetDay)
            .where(LLMBudgetDay.day == day, LLMBudgetDay.warned_at.is_(None))
            .values(warned_at=func.now())
            .returning(LLMBudgetDay.day)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    return first is not None


async def reclaim_expired_holds(session: AsyncSession) -> Decimal:
    """Gives back holds past their expiry (their process died mid-call); returns the sum."""
    holds = cast(Table, LLMBudgetReservation.__table__).fullname
    days = cast(Table, LLMBudgetDay.__table__).fullname
    result = await session.execute(
        text(
            f"WITH gone AS (DELETE FROM {holds} WHERE expires_at < now() "  # noqa: S608
            "RETURNING day, amount_usd), "
            "per_day AS (SELECT day, sum(amount_usd) AS total FROM gone GROUP BY day) "
            f"UPDATE {days} AS d SET reserved_usd = greatest(d.reserved_usd - p.total, 0) "
            "FROM per_day AS p WHERE d.day = p.day RETURNING p.total"
        )
    )
    return sum((Decimal(r[0]) for r in result), Decimal(0))


async def budget_day(session: AsyncSession, day: dt.date) -> LLMBudgetDay | None:
    return await session.get(LLMBudgetDay, day)


# --- the content cache ---------------------------------------------------------------------------


async def cached_content(session: AsyncSession, key: str) -> ContentCache | None:
    """The cached answer for `key`, counted as a hit; None when there is none."""
    row: ContentCache | None = await session.scalar(
        select(ContentCache).where(ContentCache.key == key)
    )
    if row is None:
        return None
    await session.execute(
        update(ContentCache)
        .where(ContentCache.key == key)
        .values(hits=ContentCache.hits + 1, last_hit_at=func.now())
    )
    return row


async def add_cached_content(session: AsyncSession, values: dict[str, Any]) -> None:
    """Stores an answer; when two workers finish the same content together the first row stays."""
    await session.execute(
        insert(ContentCache)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ContentCache.key])
    )


async def cached_adaptation(session: AsyncSession, key: str) -> ContentAdaptation | None:
    """The personal adaptation for `key`, counted as a hit; None when there is none."""
    row: ContentAdaptation | None = await session.scalar(
        select(ContentAdaptation).where(ContentAdaptation.key == key)
    )
    if row is None:
        return None
    await session.execute(
        update(ContentAdaptation)
        .where(ContentAdaptation.key == key)
        .values(hits=ContentAdaptation.hits + 1, last_hit_at=func.now())
    )
    return row


async def add_adaptation(session: AsyncSession, values: dict[str, Any]) -> None:
    """Stores an adaptation (its data encrypted by the column's type); the first row stays."""
    await session.execute(
        insert(ContentAdaptation)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ContentAdaptation.key])
    )


# ── budget admissions (admission.py) ──────────────────────────────────────────────────


async def observed_call_costs(
    session: AsyncSession, tasks: list[str], window: dt.timedelta
) -> list[tuple[Any, ...]]:
    """(task, average cost, calls) of the successful calls of the last `window`, per task."""
    result = await session.execute(
        select(LLMCall.task, func.avg(LLMCall.cost_usd), func.count())
        .where(
            LLMCall.status == "ok",
            LLMCall.created_at > func.now() - window,
            LLMCall.task.in_(tasks),
        )
        .group_by(LLMCall.task)
    )
    return [tuple(row) for row in result.all()]


async def admission_of(session: AsyncSession, reference_id: str) -> BudgetAdmission | None:
    return cast(
        BudgetAdmission | None,
        await session.scalar(
            select(BudgetAdmission).where(BudgetAdmission.reference_id == reference_id)
        ),
    )


async def admitted_usd(session: AsyncSession, day: dt.date) -> Decimal:
    """What the day's open admissions may still spend (their estimates less their spend)."""
    return Decimal(await session.scalar(select(func.generation.budget_admitted(day))) or 0)


async def admit(
    connection: AsyncConnection,
    admission: BudgetAdmission,
    *,
    limit: Decimal,
    allowance: Decimal,
) -> tuple[str, Decimal] | None:
    """The reference's admission (id, estimate): the one it already has, or `admission`, written
    when it fits the day's limit and the client's allowance; None when it does not fit.

    One call of `generation.admit_budget` (see its migration): run it on an autocommit
    connection, so that the day's admission lock is held inside Postgres only, never across a
    round trip to this process.
    """
    row = (
        await connection.execute(
            text(
                "SELECT granted_id, granted_usd, admitted FROM generation.admit_budget("
                ":id, :reference_id, :kind, :day, :client_id, :estimated, :expires_at, "
                ":limit, :allowance)"
            ),
            {
                "id": admission.id,
                "reference_id": admission.reference_id,
                "kind": admission.kind,
                "day": admission.day,
                "client_id": admission.client_id,
                "estimated": admission.estimated_usd,
                "expires_at": admission.expires_at,
                "limit": limit,
                "allowance": allowance,
            },
        )
    ).one()
    if not row.admitted:
        return None
    return str(row.granted_id), Decimal(row.granted_usd)


async def close_expired_admissions(session: AsyncSession) -> list[tuple[Any, ...]]:
    """Closes the open admissions past their hold; (day, estimated, spent) of each."""
    result = await session.execute(
        update(BudgetAdmission)
        .where(BudgetAdmission.status == "open", BudgetAdmission.expires_at < func.now())
        .values(status="closed", closed_at=func.now())
        .returning(BudgetAdmission.day, BudgetAdmission.estimated_usd, BudgetAdmission.spent_usd)
    )
    return [tuple(row) for row in result.all()]


async def client_admission_usage(session: AsyncSession, day: dt.date, client: str) -> Decimal:
    """What the client's admissions of the day hold (open) or spent (closed)."""
    total = await session.scalar(select(func.generation.budget_client_usage(day, client)))
    return Decimal(total or 0)


async def close_admission(
    session: AsyncSession, reference_id: str
) -> tuple[Decimal, Decimal] | None:
    """Closes the reference's open admission; its (estimated, spent), or None."""
    row = (
        await session.execute(
            update(BudgetAdmission)
            .where(BudgetAdmission.reference_id == reference_id, BudgetAdmission.status == "open")
            .values(status="closed", closed_at=func.now())
            .returning(BudgetAdmission.estimated_usd, BudgetAdmission.spent_usd)
        )
    ).one_or_none()
    return None if row is None else (Decimal(row[0]), Decimal(row[1]))


async def charge_admission(session: AsyncSession, reference_id: str, amount: Decimal) -> None:
    """Adds `amount` to the admission's spend."""
    await session.execute(
        update(BudgetAdmission)
        .where(BudgetAdmission.reference_id == reference_id)
        .values(spent_usd=BudgetAdmission.spent_usd + amount)
    )
