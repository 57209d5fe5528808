"""RealtimeService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.db import unit_of_work
from infou_libs.grpc_server import Context
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from infou_protos.session.v1 import session_pb2_grpc
from infou_realtime import service
from infou_realtime.events import ProgressHub
from infou_realtime.settings import RealtimeSettings


class RealtimeServicer(realtime_pb2_grpc.RealtimeServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: ProgressHub,
        session_service: session_pb2_grpc.SessionServiceAsyncStub,
        settings: RealtimeSettings,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._session_service = session_service
        self._settings = settings

    async def GetConnectionStats(
        self, request: realtime_pb2.GetConnectionStatsRequest, context: Context
    ) -> realtime_pb2.ConnectionStats:
        async with self._sessions() as session:
            active, total = await service.connection_stats(session)
        return realtime_pb2.ConnectionStats(
            active_connections=active,
            total_connections=total,
            watch_streams=self._hub.watching(request.session_id or None),
        )

    async def RecordConnections(
        self, request: realtime_pb2.RecordConnectionsRequest, context: Context
    ) -> realtime_pb2.RecordConnectionsResponse:
        opened = [
            service.Opened(o.connection_id, o.session_id, o.client_ip, o.user_agent, o.gateway_id)
            for o in request.opened
        ]
        closed = [(c.connection_id, c.disconnect_reason) for c in request.closed]
        async with unit_of_work(self._sessions) as session:
            await service.record_connections(session, opened, list(request.touched), closed)
        return realtime_pb2.RecordConnectionsResponse()

    async def Watch(
        self, request: realtime_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[realtime_pb2.WatchMessage]:
        async for message in service.watch(
            self._hub,
            self._session_service,
            request.session_id,
            request.connection_id,
            heartbeat_seconds=self._settings.heartbeat_seconds,
            deadline=self._settings.grpc_deadline_seconds,
        ):
            yield realtime_pb2.WatchMessage(
                type=message.type, data_json=message.data_json, sequence=message.sequence
            )

    async def RegisterConnection(
        self, request: realtime_pb2.RegisterConnectionRequest, context: Context
    ) -> realtime_pb2.RegisterConnectionResponse:
        async with unit_of_work(self._sessions) as session:
            await service.register_connection(
                session,
                request.connection_id,
                request.session_id,
                request.client_ip,
                request.user_agent,
                request.gateway_id,
            )
        return realtime_pb2.RegisterConnectionResponse()

    async def CloseConnection(
        self, request: realtime_pb2.CloseConnectionRequest, context: Context
    ) -> realtime_pb2.CloseConnectionResponse:
        async with unit_of_work(self._sessions) as session:
            await service.close_connection(
                session, request.connection_id, request.disconnect_reason
            )
        return realtime_pb2.CloseConnectionResponse()

    async def TouchConnection(
        self, request: realtime_pb2.TouchConnectionRequest, context: Context
    ) -> realtime_pb2.TouchConnectionResponse:
        async with unit_of_work(self._sessions) as session:
            await service.touch_connection(session, request.connection_id)
        return realtime_pb2.TouchConnectionResponse()
