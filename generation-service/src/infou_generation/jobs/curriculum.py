"""jobs.curriculum.generate: a session's curriculum → events.generation.curriculum_generated."""

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
    job: events_pb2.GenerateCurriculumJob,
    generated: Generated,
    _context: dict[str, Any],
    usage: events_pb2.GenerationUsage,
) -> tuple[Message, dict[str, Any]]:
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
        usage=usage,
        occurred_at=timestamp(),
    )
    return event, {"items": len(event.items)}


def _failed(job: events_pb2.GenerateCurriculumJob) -> events_pb2.GenerationFailed:
    return events_pb2.GenerationFailed(session_id=job.session_id, task="curriculum")


CURRICULUM = session_tasks.SessionJob(
    kind=subjects.CURRICULUM_JOB_KIND,
    task="curriculum",
    payload=events_pb2.GenerateCurriculumJob,
    subject=subjects.CURRICULUM_GENERATED,
    event_prefix="curriculum",
    logged_as="curriculum_generated",
    result=_result,
    failed=_failed,
)


def consumer(ctx: JobContext) -> DurableConsumer:
    return session_tasks.consumer(ctx, CURRICULUM)
