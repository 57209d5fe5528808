"""jobs.article.generate: one article of a curriculum → events.generation.article_generated."""

from __future__ import annotations

from nats.aio.msg import Msg

from infou_generation.jobs import session_tasks
from infou_generation.jobs.runner import JobContext, decode, durable_name, job_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

KIND = "article.generate"
ARTICLE_GENERATED = "events.generation.article_generated"


def consumer(ctx: JobContext) -> DurableConsumer:
    name = durable_name(KIND)

    async def handle(msg: Msg) -> None:
        job = decode(msg, events_pb2.GenerateArticleJob)
        if await session_tasks.already_done(ctx, name, msg):
            return
        generated, context, started = await session_tasks.generate(
            ctx, "article", job.session_id, job.context_json
        )
        event = events_pb2.ArticleGenerated(
            session_id=job.session_id,
            article_id=job.article_id,
            article=session_tasks.written_of(generated, str(context.get("level", ""))),
            usage=session_tasks.usage_of(generated, started),
            occurred_at=timestamp(),
        )
        await session_tasks.publish_once(ctx, name, msg, ARTICLE_GENERATED, event, "article")
        log.info(
            "article_generated",
            session_id=job.session_id,
            article_id=job.article_id,
            cache_hit=generated.cache_hit,
            tokens=generated.total_tokens,
            quality_score=event.article.quality_score,
        )

    async def exhausted(msg: Msg, exc: BaseException) -> None:
        try:
            job = events_pb2.GenerateArticleJob.FromString(msg.data)
        except Exception:
            return
        code, message = session_tasks.failure_of(exc, "article")
        await session_tasks.publish_failure(
            ctx,
            name,
            msg,
            events_pb2.GenerationFailed(
                session_id=job.session_id,
                task="article",
                article_id=job.article_id,
                error_code=code,
                message=message,
            ),
        )

    return job_consumer(ctx, KIND, handle, on_exhausted=exhausted)
