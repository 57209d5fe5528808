"""jobs.curriculum.generate: a session's curriculum → events.generation.curriculum_generated."""

from __future__ import annotations

from nats.aio.msg import Msg

from infou_generation.jobs import session_tasks
from infou_generation.jobs.runner import JobContext, decode, durable_name, job_consumer
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

KIND = "curriculum.generate"
CURRICULUM_GENERATED = "events.generation.curriculum_generated"


def consumer(ctx: JobContext) -> DurableConsumer:
    name = durable_name(KIND)

    async def handle(msg: Msg) -> None:
        job = decode(msg, events_pb2.GenerateCurriculumJob)
        if await session_tasks.already_done(ctx, name, msg):
            return
        generated, _, started = await session_tasks.generate(
            ctx, "curriculum", job.session_id, job.context_json
        )
        data = generated.data
        event = events_pb2.CurriculumGenerated(
            session_id=job.session_id,
            title=str(data.get("title", "")),
            items=[
                events_pb2.PlannedArticle(
                    title=str(item.get("title", "")),
                    summary=str(item.get("summary", "")),
                    sub_topic_ref=str(item.get("sub_topic_ref", "")),
                    estimated_read_time=str(item.get("estimated_read_time", "")),
                    key_concepts=[str(x) for x in item.get("key_concepts") or []],
                    difficulty_indicators=[str(x) for x in item.get("difficulty_indicators") or []],
                    prerequisite_titles=[str(x) for x in item.get("prerequisite_titles") or []],
                )
                for item in data.get("items") or []
            ],
            usage=session_tasks.usage_of(generated, started),
            occurred_at=timestamp(),
        )
        await session_tasks.publish_once(ctx, name, msg, CURRICULUM_GENERATED, event, "curriculum")
        log.info(
            "curriculum_generated",
            session_id=job.session_id,
            items=len(event.items),
            cache_hit=generated.cache_hit,
            tokens=generated.total_tokens,
        )

    async def exhausted(msg: Msg, exc: BaseException) -> None:
        try:
            job = events_pb2.GenerateCurriculumJob.FromString(msg.data)
        except Exception:
            return
        code, message = session_tasks.failure_of(exc, "curriculum")
        await session_tasks.publish_failure(
            ctx,
            name,
            msg,
            events_pb2.GenerationFailed(
                session_id=job.session_id, task="curriculum", error_code=code, message=message
            ),
        )

    return job_consumer(ctx, KIND, handle, on_exhausted=exhausted)
