"""The generation jobs session-service enqueues, through its outbox in the caller's transaction.

Each job carries its task's input (generation_input.py), so the worker needs nothing else, and
the session's generation attempt, which the worker copies into its result (results.py ignores
the results of an older attempt).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs import subjects
from infou_libs.outbox import add_event
from infou_protos.events.v1 import events_pb2
from infou_session import generation_input, repository
from infou_session.models import GeneratedArticle, LearningSession, outbox


async def enqueue_curriculum(db: AsyncSession, session: LearningSession) -> None:
    context = generation_input.curriculum_context(session)
    await add_event(
        db,
        outbox,
        subjects.CURRICULUM_JOB,
        events_pb2.GenerateCurriculumJob(
            session_id=session.id,
            context_json=generation_input.to_json(context),
            attempt=session.generation_attempt or 0,
        ),
    )


async def enqueue_article(
    db: AsyncSession,
    session: LearningSession,
    article: GeneratedArticle,
    articles: Sequence[GeneratedArticle],
) -> None:
    order, total = position_in_sub_topic(article, articles)
    context = generation_input.article_context(session, article, order, total)
    await add_event(
        db,
        outbox,
        subjects.ARTICLE_JOB,
        events_pb2.GenerateArticleJob(
            session_id=session.id,
            article_id=article.id,
            context_json=generation_input.to_json(context),
            attempt=session.generation_attempt or 0,
        ),
    )


def position_in_sub_topic(
    article: GeneratedArticle, articles: Sequence[GeneratedArticle]
) -> tuple[int, int]:
    same = [
        a
        for a in articles
        if (a.sub_topic_type, a.sub_topic_id) == (article.sub_topic_type, article.sub_topic_id)
    ]
    same.sort(key=lambda a: a.order_num)
    return [a.id for a in same].index(article.id) + 1, len(same)


async def enqueue_conversion(
    db: AsyncSession,
    session: LearningSession,
    article: GeneratedArticle,
    target_level: str,
    task_id: str,
) -> None:
    articles = await repository.articles_of(db, session.id)
    order, total = position_in_sub_topic(article, articles)
    context = generation_input.conversion_context(session, article, order, total, target_level)
    await add_event(
        db,
        outbox,
        subjects.CONVERT_JOB,
        events_pb2.ConvertArticleJob(
            session_id=session.id,
            article_id=article.id,
            target_level=target_level,
            task_id=task_id,
            context_json=generation_input.to_json(context),
        ),
    )
