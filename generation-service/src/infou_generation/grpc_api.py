"""GenerationService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import service
from infou_generation.admission import Admissions, Workload
from infou_generation.catalog import CatalogClient
from infou_generation.models import GeneratedSubTopic
from infou_generation.settings import GenerationSettings
from infou_libs.errors import InvalidArgument
from infou_libs.grpc_server import Context
from infou_libs.protobuf import timestamp as _timestamp
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        js: JetStreamContext,
        settings: GenerationSettings,
        catalog: CatalogClient,
        admissions: Admissions,
    ) -> None:
        self._sessions = sessions
        self._js = js
        self._settings = settings
        self._catalog = catalog
        self._admissions = admissions

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
        p = request.personalization
        options: dict[str, Any] | None = None
        if request.HasField("options"):
            options = {
                "max_subtopics": request.options.max_subtopics,
                "include_prerequisites": request.options.include_prerequisites,
                "difficulty_progression": request.options.difficulty_progression,
            }
        accepted = await service.request_subtopics(
            self._sessions,
            self._catalog,
            main_topic_id=request.main_topic_id,
            personalization={
                "interests": list(p.interests),
                "current_level": p.current_level,
                "learning_goals": p.learning_goals,
                "time_availability": p.time_availability,
                "preferred_style": p.preferred_style,
            },
            options=options,
            requester_id=request.requester_id,
            ttl=dt.timedelta(days=self._settings.generated_subtopics_ttl_days),
            admissions=self._admissions,
            client_id=request.client_id,
            client_share=request.client_budget_share,
            idempotency_key=request.idempotency_key,
        )
        return generation_pb2.RequestSubTopicsResponse(
            generation_id=accepted.generation_id,
            status=accepted.status,
            estimated_completion=_timestamp(accepted.estimated_completion),
            replayed=accepted.replayed,
        )

    async def ReserveAdmission(
        self, request: generation_pb2.ReserveAdmissionRequest, context: Context
    ) -> generation_pb2.Admission:
        if request.kind not in ("session", "subtopics") or not request.reference_id:
            raise InvalidArgument("kind and reference_id are required", field="kind")
        granted = await self._admissions.reserve(
            kind="session" if request.kind == "session" else "subtopics",
            reference_id=request.reference_id[:64],
            work=Workload(
                curricula=max(0, request.curricula),
                articles=max(0, request.articles),
                subtopic_generations=max(0, request.subtopic_generations),
            ),
            client_id=request.client_id,
            client_share=request.client_budget_share,
            learner_text=dict(request.learner_text),
        )
        return generation_pb2.Admission(
            admission_id=granted.admission_id, estimated_cost_usd=float(granted.estimated_usd)
        )

    async def ReleaseAdmission(
        self, request: generation_pb2.ReleaseAdmissionRequest, context: Context
    ) -> generation_pb2.ReleaseAdmissionResponse:
        freed = await self._admissions.release(request.reference_id)
        return generation_pb2.ReleaseAdmissionResponse(released_usd=float(freed))

    async def GetSubTopicGeneration(
        self, request: generation_pb2.GetSubTopicGenerationRequest, context: Context
    ) -> generation_pb2.SubTopicGeneration:
        async with self._sessions() as session:
            view = await service.get_subtopic_generation(session, request.generation_id)
        row = view.request
        reply = generation_pb2.SubTopicGeneration(
            generation_id=row.generation_batch_id,
            status=view.public_status,
            error_code=row.error_code or "",
            error_message=row.error_message or "",
            items=[_sub_topic(item) for item in view.items],
            main_topic_id=row.main_topic_id,
            created_at=_timestamp(row.created_at),
        )
        if row.completed_at is not None:
            reply.completed_at.CopyFrom(_timestamp(row.completed_at))
        return reply

    async def GetGeneratedSubTopics(
        self, request: generation_pb2.GetGeneratedSubTopicsRequest, context: Context
    ) -> generation_pb2.GetGeneratedSubTopicsResponse:
        async with self._sessions() as session:
            items = await service.get_generated_sub_topics(
                session, list(request.ids), list(request.public_ids)
            )
        return generation_pb2.GetGeneratedSubTopicsResponse(
            items=[_sub_topic(item) for item in items]
        )


def _sub_topic(row: GeneratedSubTopic) -> generation_pb2.GeneratedSubTopic:
    item = generation_pb2.GeneratedSubTopic(
        id=row.id,
        public_id=row.public_id,
        main_topic_id=row.main_topic_id,
        slug=row.slug,
        name=row.name,
        description=row.description or "",
        estimated_learning_time=row.estimated_learning_time or "",
        prerequisites=row.prerequisites,
        practical_projects=row.practical_projects,
        learning_outcomes=row.learning_outcomes,
        difficulty_focus=row.difficulty_focus or "",
        quality_score=float(row.quality_score),
        generation_id=row.generation_batch_id,
    )
    if row.expires_at is not None:
        item.expires_at.CopyFrom(_timestamp(row.expires_at))
    return item
