"""The generation jobs session-service enqueues, through its outbox in the caller's transaction.

Each job carries its task's input (generation_input.py), so the worker needs nothing else, and
the session's generation attempt, which the worker copies into its result (results.py ignores
the results of an older attempt).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs import subjects
from infou_libs.outbox import NewRow, add_event, add_events
from infou_protos.events.v1 import events_pb2
from infou_session import generation_input, repository
from infou_session.models import GeneratedArticle, LearningSession, outbox

Job = tuple[str, Message]


def curriculum_job(session: LearningSession) -> Job:
    """The curriculum job of a session, for its outbox (`add_events`)."""
    context = generation_input.curriculum_context(session)
    return (
        subjects.CURRICULUM_JOB,
        events_pb2.GenerateCurriculumJob(
            session_id=session.id,
            context_json=generation_input.to_json(context),
            attempt=session.generation_attempt or 0,
        ),
    )


async def enqueue_curriculum(db: AsyncSession, session: LearningSession) -> None:
    await add_events(db, outbox, [curriculum_job(session)])


def article_job(
    session: LearningSession, article: GeneratedArticle, articles: Sequence[GeneratedArticle]
) -> Job:
    order, total = position_in_sub_topic(article, articles)
    context = generation_input.article_context(session, article, order, total)
    return (
        subjects.ARTICLE_JOB,
        events_pb2.GenerateArticleJob(
            session_id=session.id,
            article_id=article.id,
            context_json=generation_input.to_json(context),
            attempt=session.generation_attempt or 0,
        ),
    )


async def enqueue_articles(
    db: AsyncSession,
    session: LearningSession,
    articles: Sequence[GeneratedArticle],
    among: Sequence[GeneratedArticle] | None = None,
    *,
    along: Sequence[NewRow] = (),
) -> None:
    """One job per article of `articles` (positioned among `among`, all of them by default),
    written in one statement (with `along`, as `add_events`)."""
    if articles:
        jobs = [article_job(session, a, among if among is not None else articles) for a in articles]
        await add_events(db, outbox, jobs, along=along)


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
