"""SessionService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session import service


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetSessionStats(
        self, request: session_pb2.GetSessionStatsRequest, context: grpc.aio.ServicerContext
    ) -> session_pb2.SessionStats:
        async with self._sessions() as session:
            stats = await service.session_stats(session)
        return session_pb2.SessionStats(
            active_sessions=stats.active, generating_sessions=stats.generating
        )
