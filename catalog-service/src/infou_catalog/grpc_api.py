"""CatalogService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog import service
from infou_catalog.models import CuratedSubTopic, Level
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


def topic_to_proto(item: service.TopicWithCounts) -> catalog_pb2.MainTopic:
    topic = item.topic
    return catalog_pb2.MainTopic(
        id=topic.id,
        slug=topic.slug,
        name=topic.name,
        description=topic.description or "",
        category=topic.category,
        popularity_score=float(topic.popularity_score),
        total_learners=topic.total_learners,
        avg_completion_rate=float(topic.avg_completion_rate),
        estimated_learning_time=topic.estimated_learning_time or "",
        difficulty_range=list(topic.difficulty_range or []),
        subtopic_count=catalog_pb2.SubTopicCount(
            curated=item.curated_count, generated=topic.generated_subtopic_count
        ),
    )


def sub_topic_to_proto(sub: CuratedSubTopic) -> catalog_pb2.CuratedSubTopic:
    return catalog_pb2.CuratedSubTopic(
        id=sub.id,
        main_topic_id=sub.main_topic_id,
        slug=sub.slug,
        name=sub.name,
        description=sub.description or "",
        quality_score=float(sub.quality_score),
        usage_count=sub.usage_count,
        avg_rating=float(sub.avg_rating),
        learning_outcomes=list(sub.learning_outcomes or []),
        prerequisites=list(sub.prerequisites or []),
        levels=list(sub.levels or []),
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
        async with self._sessions() as session:
            page = await service.list_main_topics(
                session,
                category=request.category,
                popular=request.popular,
                limit=request.limit,
                page=request.page,
            )
        return catalog_pb2.ListMainTopicsResponse(
            items=[topic_to_proto(item) for item in page.items],
            total=page.total,
            page=page.page,
            per_page=page.per_page,
        )

    async def GetMainTopic(
        self, request: catalog_pb2.GetMainTopicRequest, context: Context
    ) -> catalog_pb2.MainTopicDetail:
        key = request.WhichOneof("key")
        async with self._sessions() as session:
            detail = await service.get_main_topic(
                session,
                slug=request.slug if key == "slug" else None,
                topic_id=request.id if key == "id" else None,
            )
        return catalog_pb2.MainTopicDetail(
            topic=topic_to_proto(detail.topic),
            sub_topics=[sub_topic_to_proto(s) for s in detail.sub_topics],
        )

    async def ListCuratedSubTopics(
        self, request: catalog_pb2.ListCuratedSubTopicsRequest, context: Context
    ) -> catalog_pb2.ListCuratedSubTopicsResponse:
        async with self._sessions() as session:
            subs = await service.list_curated_sub_topics(
                session, main_slug=request.main_slug, level=request.level, limit=request.limit
            )
        return catalog_pb2.ListCuratedSubTopicsResponse(items=[sub_topic_to_proto(s) for s in subs])

    async def GetCuratedSubTopics(
        self, request: catalog_pb2.GetCuratedSubTopicsRequest, context: Context
    ) -> catalog_pb2.GetCuratedSubTopicsResponse:
        async with self._sessions() as session:
            subs = await service.get_curated_sub_topics(session, list(request.ids))
        return catalog_pb2.GetCuratedSubTopicsResponse(items=[sub_topic_to_proto(s) for s in subs])
