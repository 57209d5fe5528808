"""CatalogService over gRPC: shapes, filters, pagination and bad input (domain errors)."""

from __future__ import annotations

from typing import TypeAlias

import grpc
import pytest

from infou_catalog.models import CATEGORIES, LEVEL_CODES
from infou_catalog.seed import load_seed
from infou_libs.grpc_client import domain_error_from
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc

# The aio channel gives the async stub, which only the .pyi declares.
Stub: TypeAlias = "catalog_pb2_grpc.CatalogServiceAsyncStub"
SEED = load_seed()


def _field(exc: grpc.aio.AioRpcError) -> str:
    return domain_error_from(exc).field or ""


async def test_list_levels_gives_the_five_levels_in_order(catalog: Stub) -> None:
    reply = await catalog.ListLevels(catalog_pb2.ListLevelsRequest(), timeout=5)
    assert [lv.code for lv in reply.levels] == list(LEVEL_CODES)
    assert [lv.order for lv in reply.levels] == [1, 2, 3, 4, 5]
    assert all(lv.name and lv.characteristics for lv in reply.levels)


async def test_main_topics_default_page(catalog: Stub) -> None:
    reply = await catalog.ListMainTopics(catalog_pb2.ListMainTopicsRequest(), timeout=5)
    assert (reply.total, reply.page, reply.per_page) == (len(SEED.main_topics), 1, 20)
    assert len(reply.items) == 20
    first = reply.items[0]
    seeded = SEED.main_topics[0]
    assert (first.slug, first.name, first.category) == (seeded.slug, seeded.name, seeded.category)
    assert first.estimated_learning_time == seeded.estimated_learning_time
    assert list(first.difficulty_range) == seeded.difficulty_range
    assert first.subtopic_count.curated == len(seeded.sub_topics)
    assert first.subtopic_count.generated == 0
    assert [t.id for t in reply.items] == sorted(t.id for t in reply.items)


@pytest.mark.parametrize("category", CATEGORIES)
async def test_main_topics_by_category(catalog: Stub, category: str) -> None:
    reply = await catalog.ListMainTopics(
        catalog_pb2.ListMainTopicsRequest(category=category, limit=100), timeout=5
    )
    expected = [t.slug for t in SEED.main_topics if t.category == category]
    assert [t.slug for t in reply.items] == expected
    assert reply.total == len(expected)


async def test_main_topic_pages_cover_everything_once(catalog: Stub) -> None:
    seen: list[str] = []
    page = 1
    while True:
        reply = await catalog.ListMainTopics(
            catalog_pb2.ListMainTopicsRequest(limit=7, page=page), timeout=5
        )
        if not reply.items:
            break
        assert len(reply.items) <= 7
        seen += [t.slug for t in reply.items]
        page += 1
    assert seen == [t.slug for t in SEED.main_topics]
    assert page == -(-len(SEED.main_topics) // 7) + 1

    last = await catalog.ListMainTopics(
        catalog_pb2.ListMainTopicsRequest(limit=100, page=1), timeout=5
    )
    assert len(last.items) == len(SEED.main_topics)
    beyond = await catalog.ListMainTopics(
        catalog_pb2.ListMainTopicsRequest(limit=100, page=2), timeout=5
    )
    assert list(beyond.items) == []
    assert beyond.total == len(SEED.main_topics)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (catalog_pb2.ListMainTopicsRequest(category="astrology"), "category"),
        (catalog_pb2.ListMainTopicsRequest(category="tech\x00"), "category"),
        (catalog_pb2.ListMainTopicsRequest(limit=101), "limit"),
        (catalog_pb2.ListMainTopicsRequest(limit=-1), "limit"),
        (catalog_pb2.ListMainTopicsRequest(page=-3), "page"),
    ],
)
async def test_main_topics_bad_input_names_the_field(
    catalog: Stub, request_: catalog_pb2.ListMainTopicsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await catalog.ListMainTopics(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(info.value) == field


async def test_main_topic_detail_by_slug_and_id(catalog: Stub) -> None:
    seeded = next(t for t in SEED.main_topics if t.slug == "ai-ml")
    by_slug = await catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(slug="ai-ml"), timeout=5)
    assert by_slug.topic.slug == "ai-ml"
    assert [s.slug for s in by_slug.sub_topics] == [s.slug for s in seeded.sub_topics]
    assert by_slug.topic.subtopic_count.curated == len(seeded.sub_topics)
    first = by_slug.sub_topics[0]
    assert first.main_topic_id == by_slug.topic.id
    assert list(first.learning_outcomes) == seeded.sub_topics[0].learning_outcomes
    assert list(first.levels) == seeded.sub_topics[0].levels
    assert first.quality_score == pytest.approx(seeded.sub_topics[0].quality_score)

    by_id = await catalog.GetMainTopic(
        catalog_pb2.GetMainTopicRequest(id=by_slug.topic.id), timeout=5
    )
    assert by_id == by_slug


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (catalog_pb2.GetMainTopicRequest(slug="no-such-topic"), grpc.StatusCode.NOT_FOUND, "slug"),
        (catalog_pb2.GetMainTopicRequest(slug="ai-ml\x00"), grpc.StatusCode.NOT_FOUND, "slug"),
        (catalog_pb2.GetMainTopicRequest(slug="x" * 5000), grpc.StatusCode.NOT_FOUND, "slug"),
        (catalog_pb2.GetMainTopicRequest(id=999_999), grpc.StatusCode.NOT_FOUND, "id"),
        (catalog_pb2.GetMainTopicRequest(), grpc.StatusCode.INVALID_ARGUMENT, "slug"),
    ],
)
async def test_main_topic_detail_errors(
    catalog: Stub, request_: catalog_pb2.GetMainTopicRequest, code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await catalog.GetMainTopic(request_, timeout=5)
    assert info.value.code() == code
    assert _field(info.value) == field


async def test_curated_sub_topics_by_level(catalog: Stub) -> None:
    seeded = next(t for t in SEED.main_topics if t.slug == "ai-ml")
    every = await catalog.ListCuratedSubTopics(
        catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml"), timeout=5
    )
    assert [s.slug for s in every.items] == [s.slug for s in seeded.sub_topics]
    for level in LEVEL_CODES:
        reply = await catalog.ListCuratedSubTopics(
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml", level=level), timeout=5
        )
        expected = [s.slug for s in seeded.sub_topics if level in s.levels]
        assert [s.slug for s in reply.items] == expected, level
    limited = await catalog.ListCuratedSubTopics(
        catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml", limit=2), timeout=5
    )
    assert [s.slug for s in limited.items] == [s.slug for s in seeded.sub_topics[:2]]


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="nope"),
            grpc.StatusCode.NOT_FOUND,
            "main_slug",
        ),
        (catalog_pb2.ListCuratedSubTopicsRequest(), grpc.StatusCode.INVALID_ARGUMENT, "main_slug"),
        (
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="AI-ML"),
            grpc.StatusCode.NOT_FOUND,
            "main_slug",
        ),
        (
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml", level="expert\x00"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "level",
        ),
        (
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml", level="wizard"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "level",
        ),
        (
            catalog_pb2.ListCuratedSubTopicsRequest(main_slug="ai-ml", limit=500),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit",
        ),
    ],
)
async def test_curated_sub_topics_errors(
    catalog: Stub,
    request_: catalog_pb2.ListCuratedSubTopicsRequest,
    code: grpc.StatusCode,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await catalog.ListCuratedSubTopics(request_, timeout=5)
    assert info.value.code() == code
    assert _field(info.value) == field


async def test_get_curated_sub_topics_by_id(catalog: Stub) -> None:
    detail = await catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(slug="ai-ml"), timeout=5)
    a, b = detail.sub_topics[2], detail.sub_topics[0]
    reply = await catalog.GetCuratedSubTopics(
        catalog_pb2.GetCuratedSubTopicsRequest(ids=[a.id, 999_999, b.id, a.id]), timeout=5
    )
    assert [s.id for s in reply.items] == [a.id, b.id]
    assert reply.items[0] == a

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await catalog.GetCuratedSubTopics(
            catalog_pb2.GetCuratedSubTopicsRequest(ids=list(range(1, 102))), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(info.value) == "ids"
