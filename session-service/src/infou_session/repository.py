"""Every SQL query of session-service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Table, bindparam, func, inspect, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.schema import (
    CallableColumnDefault,
    ColumnElementColumnDefault,
    DefaultGenerator,
    ScalarElementColumnDefault,
)

from infou_libs.outbox import NewRow
from infou_session.models import (
    ACTIVE_STATUSES,
    ArticleVariant,
    Base,
    GeneratedArticle,
    LearningSession,
)


async def count_by_status(db: AsyncSession) -> dict[str, int]:
    rows = await db.execute(
        select(LearningSession.status, func.count())
        .where(LearningSession.expires_at > func.now())
        .group_by(LearningSession.status)
    )
    return {status: int(count) for status, count in rows.all()}


def active(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in ACTIVE_STATUSES)


def new_rows(*rows: Base) -> list[NewRow]:
    """New rows as the ORM's flush would insert them (the attributes set on each, column
    defaults for the rest), to insert with the events that announce them (`add_events`)."""
    rows_values: list[NewRow] = []
    for row in rows:
        state = inspect(row)
        table = state.mapper.local_table
        assert isinstance(table, Table)
        rows_values.append((table, {c.key: v for c, v in _column_values(state).items()}))
    return rows_values


def _column_values(state: InstanceState[Any]) -> dict[Column[Any], Any]:
    values: dict[Column[Any], Any] = {}
    for attr in state.mapper.column_attrs:
        column, value = attr.columns[0], state.dict.get(attr.key)
        assert isinstance(column, Column)
        # Unset (or None from merely being read on the new row): the column's default, which an
        # INSERT inside a CTE does not fill in itself; a server default is left to the server.
        if value is None and column.default is not None:
            value = _python_default(column.default)
        if value is not None or (attr.key in state.dict and column.server_default is None):
            values[column] = value
    return values


def _python_default(default: DefaultGenerator) -> Any:
    """A column's Python-side default (a value, or a callable of no context); else None."""
    if isinstance(default, ScalarElementColumnDefault):
        return default.arg
    if isinstance(default, CallableColumnDefault):
        return default.arg(None)  # type: ignore[arg-type]  # ours take no context
    return None


async def session_by_token_hash(db: AsyncSession, token_hash: str) -> LearningSession | None:
    result: LearningSession | None = await db.scalar(
        select(LearningSession).where(LearningSession.access_token_hash == token_hash)
    )
    return result


async def write_changes(db: AsyncSession) -> None:
    """Writes the changes of the session's modified rows in one statement, where the ORM's
    flush sends one UPDATE per row, and marks them written (the commit's flush has none)."""
    changes = []
    for i, row in enumerate(db.dirty):
        state = inspect(row)
        table = state.mapper.local_table
        assert isinstance(table, Table)
        changed = [a for a in state.mapper.column_attrs if a.key in state.committed_state]
        if not changed:
            continue
        values: dict[Any, Any] = {a.columns[0]: state.dict.get(a.key) for a in changed}
        for column in table.columns:
            if isinstance(column.onupdate, ColumnElementColumnDefault) and column not in values:
                values[column] = column.onupdate.arg  # updated_at = now(), as the flush would
        assert state.identity is not None
        keys = zip(state.mapper.primary_key, state.identity, strict=True)
        where = [column == value for column, value in keys]
        changes.append(update(table).where(*where).values(values).cte(f"changed_{i}"))
        for attr in changed:
            set_committed_value(row, attr.key, state.dict.get(attr.key))
    if changes:
        await db.execute(select(literal(1)).add_cte(*changes))


# The queries of every consumed result, built once: SQLAlchemy reuses their cache keys.
_SESSION_BY_ID = select(LearningSession).where(LearningSession.id == bindparam("session_id"))
_SESSION_BY_ID_LOCKED = _SESSION_BY_ID.with_for_update()
_ARTICLES_OF = (
    select(GeneratedArticle)
    .where(GeneratedArticle.session_id == bindparam("session_id"))
    .order_by(GeneratedArticle.order_num)
)


async def session_by_id(
    db: AsyncSession, session_id: str, *, for_update: bool = False
) -> LearningSession | None:
    query = _SESSION_BY_ID_LOCKED if for_update else _SESSION_BY_ID
    result: LearningSession | None = await db.scalar(query, {"session_id": session_id})
    return result


async def articles_of(db: AsyncSession, session_id: str) -> Sequence[GeneratedArticle]:
    rows = await db.scalars(_ARTICLES_OF, {"session_id": session_id})
    return rows.all()


async def article_by_id(db: AsyncSession, article_id: str) -> GeneratedArticle | None:
    result: GeneratedArticle | None = await db.scalar(
        select(GeneratedArticle).where(GeneratedArticle.id == article_id)
    )
    return result


async def variants_of(db: AsyncSession, article_id: str) -> Sequence[ArticleVariant]:
    rows = await db.scalars(select(ArticleVariant).where(ArticleVariant.article_id == article_id))
    return rows.all()


async def variant(
    db: AsyncSession, article_id: str, level: str, *, for_update: bool = False
) -> ArticleVariant | None:
    query = select(ArticleVariant).where(
        ArticleVariant.article_id == article_id, ArticleVariant.level == level
    )
    if for_update:
        query = query.with_for_update()
    result: ArticleVariant | None = await db.scalar(query)
    return result


async def variant_by_task(db: AsyncSession, task_id: str) -> ArticleVariant | None:
    result: ArticleVariant | None = await db.scalar(
        select(ArticleVariant).where(ArticleVariant.task_id == task_id).with_for_update()
    )
    return result


async def claim_variant(db: AsyncSession, article_id: str, level: str, task_id: str) -> bool:
    """Creates the variant row in `generating`; False when one already exists."""
    result = await db.execute(
        insert(ArticleVariant)
        .values(
            article_id=article_id,
            level=level,
            task_id=task_id,
            status="generating",
            code_examples_count=0,
            practical_tips=[],
            related_concepts=[],
            generation_tokens_used=0,
            generation_cost_usd=0,
            quality_score=0,
            content_warnings=[],
            cache_hit=False,
        )
        .on_conflict_do_nothing(index_elements=["article_id", "level"])
        .returning(ArticleVariant.id)
    )
    return result.first() is not None
