"""RealtimeService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.errors import Unimplemented
from infou_libs.grpc_server import Context
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_realtime import service


class RealtimeServicer(realtime_pb2_grpc.RealtimeServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetConnectionStats(
        self, request: realtime_pb2.GetConnectionStatsRequest, context: Context
    ) -> realtime_pb2.ConnectionStats:
        async with self._sessions() as session:
            active, total = await service.connection_stats(session)
        return realtime_pb2.ConnectionStats(active_connections=active, total_connections=total)

    async def Watch(
        self, request: realtime_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[realtime_pb2.WatchMessage]:
        raise Unimplemented("Watch is not built yet (issue #5, live progress)")
        yield  # pragma: no cover - makes this an async generator

    async def RegisterConnection(
        self, request: realtime_pb2.RegisterConnectionRequest, context: Context
    ) -> realtime_pb2.RegisterConnectionResponse:
        raise Unimplemented("RegisterConnection is not built yet (issue #5, live progress)")

    async def CloseConnection(
        self, request: realtime_pb2.CloseConnectionRequest, context: Context
    ) -> realtime_pb2.CloseConnectionResponse:
        raise Unimplemented("CloseConnection is not built yet (issue #5, live progress)")

    async def TouchConnection(
        self, request: realtime_pb2.TouchConnectionRequest, context: Context
    ) -> realtime_pb2.TouchConnectionResponse:
        raise Unimplemented("TouchConnection is not built yet (issue #5, live progress)")
