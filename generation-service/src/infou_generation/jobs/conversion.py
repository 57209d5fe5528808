"""jobs.article.convert: an article rewritten for another level →
events.generation.article_converted. Its own durable consumer, so a learner's conversion never
waits behind a session's bulk article jobs."""

from __future__ import annotations

from nats.aio.msg import Msg

from infou_generation.jobs import session_tasks
from infou_generation.jobs.runner import JobContext, decode, durable_name, job_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

KIND = "article.convert"
ARTICLE_CONVERTED = "events.generation.article_converted"


def consumer(ctx: JobContext) -> DurableConsumer:
    name = durable_name(KIND)

    async def handle(msg: Msg) -> None:
        job = decode(msg, events_pb2.ConvertArticleJob)
        if await session_tasks.already_done(ctx, name, msg):
            return
        generated, _, started = await session_tasks.generate(
            ctx, "level_conversion", job.session_id, job.context_json
        )
        event = events_pb2.ArticleConverted(
            session_id=job.session_id,
            article_id=job.article_id,
            target_level=job.target_level,
            task_id=job.task_id,
            article=session_tasks.written_of(generated, job.target_level),
            usage=session_tasks.usage_of(generated, started),
            occurred_at=timestamp(),
        )
        await session_tasks.publish_once(ctx, name, msg, ARTICLE_CONVERTED, event, "converted")
        log.info(
            "article_converted",
            session_id=job.session_id,
            article_id=job.article_id,
            target_level=job.target_level,
            cache_hit=generated.cache_hit,
            tokens=generated.total_tokens,
        )

    async def exhausted(msg: Msg, exc: BaseException) -> None:
        try:
            job = events_pb2.ConvertArticleJob.FromString(msg.data)
        except Exception:
            return
        code, message = session_tasks.failure_of(exc, "level_conversion")
        await session_tasks.publish_failure(
            ctx,
            name,
            msg,
            events_pb2.GenerationFailed(
                session_id=job.session_id,
                task="level_conversion",
                article_id=job.article_id,
                target_level=job.target_level,
                task_id=job.task_id,
                error_code=code,
                message=message,
            ),
        )

    return job_consumer(ctx, KIND, handle, on_exhausted=exhausted)
