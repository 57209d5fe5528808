"""jobs.article.generate: one article of a curriculum → events.generation.article_generated."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from infou_generation.engine import Generated
from infou_generation.jobs import session_tasks
from infou_generation.jobs.runner import JobContext
from infou_libs import subjects
from infou_libs.messaging import DurableConsumer
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2


def _result(
    job: events_pb2.GenerateArticleJob,
    generated: Generated,
    context: dict[str, Any],
    usage: events_pb2.GenerationUsage,
) -> tuple[Message, dict[str, Any]]:
    event = events_pb2.ArticleGenerated(
        session_id=job.session_id,
        article_id=job.article_id,
        article=session_tasks.written_of(generated, str(context.get("level", ""))),
        usage=usage,
        occurred_at=timestamp(),
    )
    return event, {"article_id": job.article_id, "quality_score": event.article.quality_score}


def _failed(job: events_pb2.GenerateArticleJob) -> events_pb2.GenerationFailed:
    return events_pb2.GenerationFailed(
        session_id=job.session_id, task="article", article_id=job.article_id
    )


ARTICLE = session_tasks.SessionJob(
    kind=subjects.ARTICLE_JOB_KIND,
    task="article",
    payload=events_pb2.GenerateArticleJob,
    subject=subjects.ARTICLE_GENERATED,
    event_prefix="article",
    logged_as="article_generated",
    result=_result,
    failed=_failed,
)


def consumer(ctx: JobContext) -> DurableConsumer:
    return session_tasks.consumer(ctx, ARTICLE)
