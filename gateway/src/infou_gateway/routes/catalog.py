"""GET /main-topics, /main-topics/{slug}, /sub-topics/curated (PRD §3.2-3.3), through the cache.

Keys (PRD §5.2): the list lives in the hash `mt:all:v1` (one field per query variant, so one
DEL drops every page), a topic's detail in `mt:s:{slug}:v1`, its curated sub-topics per level in
`st:c:{main_id}:{level|all}:v1`. CatalogChanged events drop them (events.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Path, Query, Request, Response

from infou_gateway import cache
from infou_gateway.path_params import PATH_PARAM_PATTERN
from infou_gateway.schemas import (
    CuratedSubTopicList,
    ErrorResponse,
    MainTopicDetail,
    MainTopicList,
)
from infou_gateway.state import GatewayState, State
from infou_libs.errors import NotFound
from infou_protos.catalog.v1 import catalog_pb2

router = APIRouter(tags=["catalog"])

Category = Literal["tech", "business", "science", "humanities", "language", "arts", "life"]
MAX_PAGE = 1_000_000  # far past any real page; keeps the value inside the RPC's int32

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown slug"},
    422: {"model": ErrorResponse, "description": "a parameter is invalid; `field` names it"},
}


def topic_json(topic: catalog_pb2.MainTopic) -> dict[str, Any]:
    return {
        "id": topic.id,
        "slug": topic.slug,
        "name": topic.name,
        "description": topic.description,
        "category": topic.category,
        "popularity_score": topic.popularity_score,
        "total_learners": topic.total_learners,
        "avg_completion_rate": topic.avg_completion_rate,
        "estimated_learning_time": topic.estimated_learning_time,
        "difficulty_range": list(topic.difficulty_range),
        "subtopic_count": {
            "curated": topic.subtopic_count.curated,
            "generated": topic.subtopic_count.generated,
        },
    }


def curated_json(sub: catalog_pb2.CuratedSubTopic) -> dict[str, Any]:
    return {
        "id": f"curated_{sub.id}",
        "main_topic_id": sub.main_topic_id,
        "slug": sub.slug,
        "name": sub.name,
        "description": sub.description,
        "source_type": "curated",
        "quality_score": sub.quality_score,
        "usage_count": sub.usage_count,
        "avg_rating": sub.avg_rating,
        "learning_outcomes": list(sub.learning_outcomes),
        "prerequisites": list(sub.prerequisites),
        "levels": list(sub.levels),
    }


@router.get("/main-topics", response_model=MainTopicList, responses=_ERRORS)
async def list_main_topics(
    state: State,
    request: Request,
    category: Category | None = None,
    popular: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Any:
    """Main topics, one page; `popular=true` orders by popularity_score, most popular first."""

    async def load() -> dict[str, Any]:
        reply = await state.clients.catalog.ListMainTopics(
            catalog_pb2.ListMainTopicsRequest(
                category=category or "", popular=popular, limit=limit, page=page
            ),
            timeout=state.clients.deadline,
        )
        return {
            "items": [topic_json(t) for t in reply.items],
            "meta": {"total": reply.total, "page": reply.page, "per_page": reply.per_page},
        }

    variant = f"c={category or ''}|p={int(popular)}|l={limit}|pg={page}"
    ttl = cache.MAIN_TOPICS_TTL
    body = await state.cache.served(
        "main_topics",
        cache.MAIN_TOPICS_KEY,
        variant,
        ttl,
        lambda: state.cache.get_or_load_encoded(
            "main_topics",
            cache.MAIN_TOPICS_KEY,
            ttl,
            load,
            field=variant,
            store_if=lambda body: bool(body["items"]) or page == 1,
        ),
        cache.Target.of(request),
    )
    return Response(body, media_type="application/json")


def _main_topic_loader(state: GatewayState, slug: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def load() -> dict[str, Any]:
        reply = await state.clients.catalog.GetMainTopic(
            catalog_pb2.GetMainTopicRequest(slug=slug), timeout=state.clients.deadline
        )
        return topic_json(reply.topic) | {"sub_topics": [curated_json(s) for s in reply.sub_topics]}

    return load


async def _main_topic(state: GatewayState, slug: str) -> dict[str, Any]:
    value: dict[str, Any] = await state.cache.get_or_load(
        "main_topic",
        cache.main_topic_key(slug),
        cache.MAIN_TOPIC_TTL,
        _main_topic_loader(state, slug),
    )
    return value


@router.get("/main-topics/{slug}", response_model=MainTopicDetail, responses=_ERRORS)
async def get_main_topic(
    state: State,
    request: Request,
    slug: Annotated[str, Path(max_length=100, pattern=PATH_PARAM_PATTERN)],
) -> Any:
    """One main topic with its curated sub-topics (beyond the PRD: clients need it)."""
    key, ttl = cache.main_topic_key(slug), cache.MAIN_TOPIC_TTL
    body = await state.cache.served(
        "main_topic",
        key,
        "",
        ttl,
        lambda: state.cache.get_or_load_encoded(
            "main_topic", key, ttl, _main_topic_loader(state, slug)
        ),
        cache.Target.of(request),
    )
    return Response(body, media_type="application/json")


@router.get("/sub-topics/curated", response_model=CuratedSubTopicList, responses=_ERRORS)
async def list_curated_sub_topics(
    state: State,
    request: Request,
    main_slug: Annotated[str, Query(min_length=1, max_length=100)],
    level: Annotated[str | None, Query(min_length=1, max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    """A main topic's curated sub-topics in curated order; with `level`, those that suit it."""

    async def produce() -> bytes:
        try:
            topic = await _main_topic(state, main_slug)  # its id keys the cache (PRD §5.2)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            raise NotFound("no main topic with this slug", field="main_slug") from exc

        async def load() -> list[dict[str, Any]]:
            # The whole list for this level (limit applied below): one entry serves every limit.
            reply = await state.clients.catalog.ListCuratedSubTopics(
                catalog_pb2.ListCuratedSubTopicsRequest(
                    main_slug=main_slug, level=level or "", limit=100
                ),
                timeout=state.clients.deadline,
            )
            return [curated_json(s) for s in reply.items]

        items: list[dict[str, Any]] = await state.cache.get_or_load(
            "subtopics_curated", cache.curated_key(topic["id"], level), cache.CURATED_TTL, load
        )
        return cache.encode({"items": items[:limit]})

    # In memory under the topic's detail key: every change to its curated list drops that too.
    body = await state.cache.served(
        "subtopics_curated",
        cache.main_topic_key(main_slug),
        f"curated|{level or ''}|{limit}",
        cache.CURATED_TTL,
        produce,
        cache.Target.of(request),
    )
    return Response(body, media_type="application/json")
