"""RealtimeService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_realtime import service


class RealtimeServicer(realtime_pb2_grpc.RealtimeServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetConnectionStats(
        self, request: realtime_pb2.GetConnectionStatsRequest, context: grpc.aio.ServicerContext
    ) -> realtime_pb2.ConnectionStats:
        async with self._sessions() as session:
            active, total = await service.connection_stats(session)
        return realtime_pb2.ConnectionStats(active_connections=active, total_connections=total)
