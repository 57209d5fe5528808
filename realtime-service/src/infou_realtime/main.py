"""realtime-service process: `python -m infou_realtime [serve|migrate]`."""

from __future__ import annotations

from collections.abc import Sequence

from infou_libs.grpc_client import ServiceClient
from infou_libs.grpc_server import Registration
from infou_libs.migrations import package_migrations
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_protos.session.v1 import session_pb2_grpc
from infou_realtime import retention
from infou_realtime.events import ProgressHub
from infou_realtime.grpc_api import RealtimeServicer
from infou_realtime.models import SCHEMA, outbox
from infou_realtime.settings import RealtimeSettings

MIGRATIONS = package_migrations("infou_realtime")


async def build(rt: Runtime) -> Sequence[Registration]:
    settings = rt.settings
    assert isinstance(settings, RealtimeSettings)
    hub = ProgressHub(rt.nc, settings.watcher_queue_size)
    await hub.start()
    rt.closers.append(hub.stop)
    session_service = ServiceClient(settings.session_addr, settings.grpc_deadline_seconds)
    rt.closers.append(session_service.close)
    servicer = RealtimeServicer(
        rt.sessions, hub, session_pb2_grpc.SessionServiceStub(session_service.channel), settings
    )
    return [
        (
            realtime_pb2_grpc.add_RealtimeServiceServicer_to_server,
            servicer,
            realtime_pb2.DESCRIPTOR.services_by_name["RealtimeService"].full_name,
        )
    ]


SPEC = ServiceSpec(
    name="realtime",
    schema=SCHEMA,
    migrations_dir=MIGRATIONS,
    outbox=outbox,
    build=build,
    retention=retention.sweep,
)


def run() -> None:
    main(SPEC, RealtimeSettings)
