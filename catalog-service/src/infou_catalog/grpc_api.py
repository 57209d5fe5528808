"""CatalogService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog import service
from infou_catalog.models import Level
from infou_libs.errors import Unimplemented
from infou_libs.grpc_server import Context
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc


def level_to_proto(level: Level) -> catalog_pb2.Level:
    return catalog_pb2.Level(
        code=level.code,
        name=level.name,
        description=level.description or "",
        target_audience=level.target_audience or "",
        characteristics=list(level.characteristics or []),
        estimated_hours_per_week=level.estimated_hours_per_week or 0,
        order=level.order_num,
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def ListLevels(
        self, request: catalog_pb2.ListLevelsRequest, context: Context
    ) -> catalog_pb2.ListLevelsResponse:
        async with self._sessions() as session:
            levels = await service.list_levels(session)
        return catalog_pb2.ListLevelsResponse(levels=[level_to_proto(lv) for lv in levels])

    async def ListMainTopics(
        self, request: catalog_pb2.ListMainTopicsRequest, context: Context
    ) -> catalog_pb2.ListMainTopicsResponse:
        raise Unimplemented("ListMainTopics is not built yet (issue #3, catalog)")

    async def GetMainTopic(
        self, request: catalog_pb2.GetMainTopicRequest, context: Context
    ) -> catalog_pb2.MainTopicDetail:
        raise Unimplemented("GetMainTopic is not built yet (issue #3, catalog)")

    async def ListCuratedSubTopics(
        self, request: catalog_pb2.ListCuratedSubTopicsRequest, context: Context
    ) -> catalog_pb2.ListCuratedSubTopicsResponse:
        raise Unimplemented("ListCuratedSubTopics is not built yet (issue #3, catalog)")

    async def GetCuratedSubTopics(
        self, request: catalog_pb2.GetCuratedSubTopicsRequest, context: Context
    ) -> catalog_pb2.GetCuratedSubTopicsResponse:
        raise Unimplemented("GetCuratedSubTopics is not built yet (issue #3, catalog)")
