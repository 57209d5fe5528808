"""GenerationService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

import grpc
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import service
from infou_generation.settings import GenerationSettings
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        js: JetStreamContext,
        settings: GenerationSettings,
    ) -> None:
        self._sessions = sessions
        self._js = js
        self._settings = settings

    async def GetEngineStatus(
        self, request: generation_pb2.GetEngineStatusRequest, context: grpc.aio.ServicerContext
    ) -> generation_pb2.EngineStatus:
        async with self._sessions() as session:
            status = await service.engine_status(
                session,
                self._js,
                self._settings.configured_providers(),
                self._settings.worker_heartbeat_seconds,
            )
        return generation_pb2.EngineStatus(
            providers=status.providers,
            workers_alive=status.workers_alive,
            pending_jobs=status.pending_jobs,
        )
