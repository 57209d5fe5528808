"""session-service process: `python -m infou_session [serve|migrate]`."""

from __future__ import annotations

from collections.abc import Sequence

from infou_libs.grpc_server import Registration
from infou_libs.messaging import DurableConsumer
from infou_libs.migrations import package_migrations
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session import retention
from infou_session.admission import AdmissionClient, ReleasingPublisher
from infou_session.events import result_consumer, watch_catalog
from infou_session.feedback_events import feedback_consumer
from infou_session.grpc_api import SessionServicer
from infou_session.models import SCHEMA, outbox
from infou_session.progress import ProgressPublisher
from infou_session.settings import SessionSettings
from infou_session.topics import TopicDirectory

MIGRATIONS = package_migrations("infou_session")


def _settings(rt: Runtime) -> SessionSettings:
    settings = rt.settings
    assert isinstance(settings, SessionSettings)
    return settings


async def build(rt: Runtime) -> Sequence[Registration]:
    settings = _settings(rt)
    directory = TopicDirectory(
        settings.catalog_addr,
        settings.generation_addr,
        settings.grpc_deadline_seconds,
        cache_seconds=settings.topic_cache_seconds,
    )
    rt.closers.append(directory.close)
    await watch_catalog(rt.nc, directory)
    servicer = SessionServicer(
        rt.sessions, settings, directory, ProgressPublisher(rt.nc), _admission(rt)
    )
    return [
        (
            session_pb2_grpc.add_SessionServiceServicer_to_server,
            servicer,
            session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
        )
    ]


def _admission(rt: Runtime) -> AdmissionClient:
    settings = _settings(rt)
    admission = AdmissionClient(settings.generation_addr, settings.grpc_deadline_seconds)
    rt.closers.append(admission.close)
    return admission


def consumers(rt: Runtime) -> Sequence[DurableConsumer]:
    settings = _settings(rt)
    # A session whose generation ends gives back what its admission did not spend.
    publisher = ReleasingPublisher(ProgressPublisher(rt.nc), _admission(rt))
    return [
        result_consumer(rt.js, rt.sessions, publisher, settings.result_consumer_concurrency),
        feedback_consumer(rt.js, rt.sessions, ProgressPublisher(rt.nc)),
    ]


SPEC = ServiceSpec(
    name="session",
    schema=SCHEMA,
    migrations_dir=MIGRATIONS,
    outbox=outbox,
    build=build,
    consumers=consumers,
    retention=retention.sweep,
)


def run() -> None:
    main(SPEC, SessionSettings)
