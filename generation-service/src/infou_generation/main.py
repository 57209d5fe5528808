"""generation-service process: `python -m infou_generation [serve|migrate]`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

from infou_generation import retention
from infou_generation.admission import Admissions
from infou_generation.catalog import CatalogClient
from infou_generation.content.moderation import build_moderation
from infou_generation.events import consumers
from infou_generation.grpc_api import GenerationServicer
from infou_generation.models import SCHEMA, outbox
from infou_generation.settings import GenerationSettings
from infou_generation.workers import WorkerPresence
from infou_libs.grpc_server import Registration
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_libs.migrations import package_migrations
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc

MIGRATIONS = package_migrations("infou_generation")

log = get_logger(__name__)


async def build(rt: Runtime) -> Sequence[Registration]:
    settings = rt.settings
    assert isinstance(settings, GenerationSettings)
    if settings.process_role != "api":
        presence = WorkerPresence(
            rt.sessions, settings.worker_concurrency, settings.worker_heartbeat_seconds
        )
        rt.tasks.append(asyncio.create_task(presence.run(), name="worker-presence"))
        rt.closers.append(presence.leave)
    if settings.process_role == "jobs" and settings.jobs_nice:
        os.nice(settings.jobs_nice)
        log.info("jobs_cpu_priority_lowered", nice=settings.jobs_nice)
    catalog = CatalogClient(settings.catalog_addr, settings.grpc_deadline_seconds)
    rt.closers.append(catalog.close)
    # Learner text is moderated by admission, before anything is held or stored.
    moderation = build_moderation(settings)
    rt.closers.append(moderation.aclose)
    admissions = Admissions(rt.sessions, settings, moderation=moderation)
    return [
        (
            generation_pb2_grpc.add_GenerationServiceServicer_to_server,
            GenerationServicer(rt.sessions, rt.js, settings, catalog, admissions),
            generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
        )
    ]


def role_consumers(rt: Runtime) -> Sequence[DurableConsumer]:
    """The job workers and consumers, unless this process serves the API alone."""
    settings = rt.settings
    assert isinstance(settings, GenerationSettings)
    return () if settings.process_role == "api" else consumers(rt)


SPEC = ServiceSpec(
    name="generation",
    schema=SCHEMA,
    migrations_dir=MIGRATIONS,
    outbox=outbox,
    build=build,
    consumers=role_consumers,
    retention=retention.sweep,
)


def run() -> None:
    main(SPEC, GenerationSettings)


# The gRPC API alone (sub-topic requests, admissions), without job workers or consumers: for
# tests that play the worker themselves, or an API-only replica.
API_SPEC = dataclasses.replace(SPEC, consumers=lambda _rt: ())
