"""jobs.article.convert: an article rewritten for another level →
events.generation.article_converted. Its own durable consumer, so a learner's conversion never
waits behind a session's bulk article jobs."""

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
    job: events_pb2.ConvertArticleJob,
    generated: Generated,
    _context: dict[str, Any],
    usage: events_pb2.GenerationUsage,
) -> tuple[Message, dict[str, Any]]:
    event = events_pb2.ArticleConverted(
        session_id=job.session_id,
        article_id=job.article_id,
        target_level=job.target_level,
        task_id=job.task_id,
        article=session_tasks.written_of(generated, job.target_level),
        usage=usage,
        occurred_at=timestamp(),
    )
    return event, {"article_id": job.article_id, "target_level": job.target_level}


def _failed(job: events_pb2.ConvertArticleJob) -> events_pb2.GenerationFailed:
    return events_pb2.GenerationFailed(
        session_id=job.session_id,
        task="level_conversion",
        article_id=job.article_id,
        target_level=job.target_level,
        task_id=job.task_id,
    )


CONVERSION = session_tasks.SessionJob(
    kind=subjects.CONVERT_JOB_KIND,
    task="level_conversion",
    payload=events_pb2.ConvertArticleJob,
    subject=subjects.ARTICLE_CONVERTED,
    event_prefix="converted",
    logged_as="article_converted",
    result=_result,
    failed=_failed,
)


def consumer(ctx: JobContext) -> DurableConsumer:
    return session_tasks.consumer(ctx, CONVERSION)
