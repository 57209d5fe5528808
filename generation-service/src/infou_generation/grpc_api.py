"""GenerationService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import service
from infou_generation.settings import GenerationSettings
from infou_libs.errors import Unimplemented
from infou_libs.grpc_server import Context
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
        self, request: generation_pb2.GetEngineStatusRequest, context: Context
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

    async def RequestSubTopics(
        self, request: generation_pb2.RequestSubTopicsRequest, context: Context
    ) -> generation_pb2.RequestSubTopicsResponse:
        raise Unimplemented("RequestSubTopics is not built yet (issue #4, generation engine)")

    async def GetSubTopicGeneration(
        self, request: generation_pb2.GetSubTopicGenerationRequest, context: Context
    ) -> generation_pb2.SubTopicGeneration:
        raise Unimplemented("GetSubTopicGeneration is not built yet (issue #4, generation engine)")

    async def GetGeneratedSubTopics(
        self, request: generation_pb2.GetGeneratedSubTopicsRequest, context: Context
    ) -> generation_pb2.GetGeneratedSubTopicsResponse:
        raise Unimplemented("GetGeneratedSubTopics is not built yet (issue #4, generation engine)")
