"""Every conversion of an article to another level: GET /articles/{id}/convert and the adaptive
difficulty of feedback-service (events.feedback.difficulty_adjusted). Both run in the caller's
transaction and go through one claim of the article's variant: a ready variant is reused, a
failed one retried, a missing one claimed (once, however many ask at the same time) and its
conversion job enqueued on its own, higher-priority queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import FailedPrecondition, InvalidArgument
from infou_libs.levels import LEVELS
from infou_session import jobs, repository
from infou_session.models import ArticleVariant, GeneratedArticle, LearningSession
from infou_session.service import ArticleView, authorize_article, available_levels
from infou_session.topics import public_ref
from infou_session.workflow import ArticleStatus


@dataclass(frozen=True)
class Conversion:
    status: str  # ready | processing
    task_id: str
    view: ArticleView | None


def _task_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


async def _claim(
    db: AsyncSession, session: LearningSession, article: GeneratedArticle, level: str
) -> tuple[str, ArticleVariant | None]:
    """(task id, variant) of the article at `level`; the variant is None when this call just
    claimed it. A missing or failed variant gets its conversion job enqueued."""
    variant = await repository.variant(db, article.id, level, for_update=True)
    if variant is None:
        task_id = _task_id()
        if await repository.claim_variant(db, article.id, level, task_id):
            await jobs.enqueue_conversion(db, session, article, level, task_id)
            return task_id, None
        variant = await repository.variant(db, article.id, level, for_update=True)
        assert variant is not None
    if variant.status == ArticleStatus.FAILED:
        variant.task_id = _task_id()
        variant.status = ArticleStatus.GENERATING.value
        variant.failure_reason = None
        await jobs.enqueue_conversion(db, session, article, level, variant.task_id)
    return variant.task_id, variant


async def convert_article(
    db: AsyncSession, secret: str, article_id: str, target_level: str, token: str
) -> Conversion:
    """A ready variant at once, or a conversion job (its own, higher-priority queue)."""
    if target_level not in LEVELS:
        raise InvalidArgument(
            f"target_level must be one of {', '.join(LEVELS)}", field="target_level"
        )
    session, article = await authorize_article(db, secret, article_id, token)
    if article.status != ArticleStatus.READY:
        raise FailedPrecondition(
            "this article is not written yet; convert it once it is ready",
            field="article_id",
            code="ARTICLE_NOT_READY",
        )
    ref = public_ref(session.selected_subtopics, article.sub_topic_type, article.sub_topic_id)
    if target_level == article.target_level:
        variants = await repository.variants_of(db, article.id)
        return Conversion(
            "ready", "", ArticleView(article, None, available_levels(article, variants), ref)
        )
    task_id, variant = await _claim(db, session, article, target_level)
    if variant is not None and variant.status == ArticleStatus.READY:
        variants = await repository.variants_of(db, article.id)
        view = ArticleView(article, variant, available_levels(article, variants), ref)
        return Conversion("ready", task_id, view)
    return Conversion("processing", task_id, None)


async def convert_for_difficulty(
    db: AsyncSession, session: LearningSession, article: GeneratedArticle, level: str
) -> dict[str, Any]:
    """One article moved to `level` by adaptive difficulty: ready, or converting (the task
    named), or not written yet."""
    entry: dict[str, Any] = {"article_id": article.id, "task_id": None}
    if article.status != ArticleStatus.READY:
        return entry | {"status": "not_written"}
    if article.target_level == level:
        return entry | {"status": "ready"}
    task_id, variant = await _claim(db, session, article, level)
    ready = variant is not None and variant.status == ArticleStatus.READY
    return entry | {"status": "ready" if ready else "processing", "task_id": task_id}
