"""feedback-service process: `python -m infou_feedback [serve|migrate]`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from infou_feedback import partitions, retention
from infou_feedback.grpc_api import FeedbackServicer
from infou_feedback.models import SCHEMA, outbox
from infou_feedback.session_access import SessionAccess
from infou_feedback.settings import FeedbackSettings
from infou_libs.grpc_server import Registration
from infou_libs.migrations import package_migrations
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.feedback.v1 import feedback_pb2, feedback_pb2_grpc

MIGRATIONS = package_migrations("infou_feedback")


async def build(rt: Runtime) -> Sequence[Registration]:
    settings = rt.settings
    assert isinstance(settings, FeedbackSettings)
    # Partitions first, then every day: a month never starts without its partition.
    await partitions.ensure_ahead(rt.sessions, settings.partition_months_ahead)
    rt.tasks.append(
        asyncio.create_task(
            partitions.maintain(
                rt.sessions,
                settings.partition_months_ahead,
                settings.partition_check_interval_seconds,
            ),
            name="progress-partitions",
        )
    )
    access = SessionAccess(settings.session_addr, settings.grpc_deadline_seconds)
    rt.closers.append(access.close)
    return [
        (
            feedback_pb2_grpc.add_FeedbackServiceServicer_to_server,
            FeedbackServicer(rt.sessions, settings, access),
            feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
        )
    ]


SPEC = ServiceSpec(
    name="feedback",
    schema=SCHEMA,
    migrations_dir=MIGRATIONS,
    outbox=outbox,
    build=build,
    retention=retention.sweep,
)


def run() -> None:
    main(SPEC, FeedbackSettings)
