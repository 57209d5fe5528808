"""session-service process: `python -m infou_session [serve|migrate]`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infou_libs.grpc_server import Registration
from infou_libs.runtime import Runtime, ServiceSpec, main
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session.grpc_api import SessionServicer
from infou_session.models import SCHEMA, outbox
from infou_session.settings import SessionSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def build(rt: Runtime) -> Sequence[Registration]:
    return [
        (
            session_pb2_grpc.add_SessionServiceServicer_to_server,
            SessionServicer(rt.sessions),
            session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
        )
    ]


SPEC = ServiceSpec(
    name="session", schema=SCHEMA, migrations_dir=MIGRATIONS, outbox=outbox, build=build
)


def run() -> None:
    main(SPEC, SessionSettings)
