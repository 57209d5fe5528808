"""realtime-service process: `python -m infou_realtime [serve|migrate]`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infou_libs.grpc_server import Registration
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_realtime.grpc_api import RealtimeServicer
from infou_realtime.models import SCHEMA, outbox
from infou_realtime.settings import RealtimeSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def build(rt: Runtime) -> Sequence[Registration]:
    return [
        (
            realtime_pb2_grpc.add_RealtimeServiceServicer_to_server,
            RealtimeServicer(rt.sessions),
            realtime_pb2.DESCRIPTOR.services_by_name["RealtimeService"].full_name,
        )
    ]


SPEC = ServiceSpec(
    name="realtime", schema=SCHEMA, migrations_dir=MIGRATIONS, outbox=outbox, build=build
)


def run() -> None:
    main(SPEC, RealtimeSettings)
