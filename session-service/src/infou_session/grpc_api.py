"""SessionService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.errors import Unimplemented
from infou_libs.grpc_server import Context
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session import service


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetSessionStats(
        self, request: session_pb2.GetSessionStatsRequest, context: Context
    ) -> session_pb2.SessionStats:
        async with self._sessions() as session:
            stats = await service.session_stats(session)
        return session_pb2.SessionStats(
            active_sessions=stats.active, generating_sessions=stats.generating
        )

    async def CreateSession(
        self, request: session_pb2.CreateSessionRequest, context: Context
    ) -> session_pb2.CreateSessionResponse:
        raise Unimplemented("CreateSession is not built yet (issue #5, learning sessions)")

    async def GetSession(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        raise Unimplemented("GetSession is not built yet (issue #5, learning sessions)")

    async def GetCurriculum(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Curriculum:
        raise Unimplemented("GetCurriculum is not built yet (issue #5, learning sessions)")

    async def GetArticle(
        self, request: session_pb2.GetArticleRequest, context: Context
    ) -> session_pb2.Article:
        raise Unimplemented("GetArticle is not built yet (issue #5, learning sessions)")

    async def ConvertArticle(
        self, request: session_pb2.ConvertArticleRequest, context: Context
    ) -> session_pb2.ConvertArticleResponse:
        raise Unimplemented("ConvertArticle is not built yet (issue #5, learning sessions)")

    async def RetrySession(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        raise Unimplemented("RetrySession is not built yet (issue #5, learning sessions)")
