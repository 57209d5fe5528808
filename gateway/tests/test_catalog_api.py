"""GET /main-topics, /main-topics/{slug}, /sub-topics/curated: contract, bad input and the cache.

The gateway runs its real lifespan (Redis, NATS, the cache-invalidation consumer) in front of a
real catalog-service, both on a NATS server private to this module (the shared one carries
other suites' events, which would move these numbers and drop these cache entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, generate_latest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infou_catalog.main import SPEC
from infou_catalog.seed import load_seed
from infou_catalog.settings import CatalogSettings
from infou_devtools import engines
from infou_devtools.testing import running_service
from infou_gateway import cache
from infou_gateway import memory_reads as memory_layer
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings
from infou_libs.db import asyncpg_url
from infou_libs.messaging import EVENTS_STREAM, connect, ensure_streams, publish
from infou_protos.events.v1 import events_pb2

SEED = load_seed()
TOPIC_FIELDS = {
    "id",
    "slug",
    "name",
    "description",
    "category",
    "popularity_score",
    "total_learners",
    "avg_completion_rate",
    "estimated_learning_time",
    "difficulty_range",
    "subtopic_count",
}
CURATED_FIELDS = {
    "id",
    "main_topic_id",
    "slug",
    "name",
    "description",
    "source_type",
    "quality_score",
    "usage_count",
    "avg_rating",
    "learning_outcomes",
}
REDIS_DB = 13  # this module's own database on the shared Redis; flushed before each test


# ── engines and services ───────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def private_nats_url(module_nats_url: str) -> str:
    return module_nats_url


@pytest.fixture(scope="module")
def catalog_db(module_database_url: str) -> str:
    return module_database_url


@pytest.fixture(scope="module")
async def catalog_port(catalog_db: str, private_nats_url: str) -> AsyncIterator[int]:
    settings = CatalogSettings(
        environment="test", database_url=catalog_db, nats_url=private_nats_url
    )
    async with running_service(SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def db(catalog_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(catalog_db))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def nc(private_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(private_nats_url, "gateway-catalog-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(scope="module")
def redis_db_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_db_url, decode_responses=True)
    yield client
    await client.aclose()


def _settings(catalog_db: str, nats_url: str, redis_url: str, catalog_port: int) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        database_url=catalog_db,
        nats_url=nats_url,
        redis_url=redis_url,
        catalog_addr=f"127.0.0.1:{catalog_port}",
    )


async def settle(nc: NatsClient, db: AsyncEngine, timeout: float = 20.0) -> None:
    """Waits until every announced change has reached every consumer (caches are quiet)."""
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with db.connect() as conn:
            unsent = await conn.scalar(
                text("SELECT count(*) FROM catalog.outbox WHERE published_at IS NULL")
            )
        consumers = await js.consumers_info(EVENTS_STREAM)
        busy = [c for c in consumers if c.num_pending or c.num_ack_pending]
        if not unsent and not busy:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("events still in flight")


@pytest.fixture
async def api(
    catalog_db: str,
    private_nats_url: str,
    redis_db_url: str,
    catalog_port: int,
    nc: NatsClient,
    db: AsyncEngine,
    redis: Redis,
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(catalog_db, private_nats_url, redis_db_url, catalog_port))
    async with app.router.lifespan_context(app):
        await settle(nc, db)
        await redis.flushdb()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def get_ok(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    reply = await api.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def topic_id(api: httpx.AsyncClient, slug: str) -> int:
    return int((await get_ok(api, f"/main-topics/{slug}"))["id"])


async def set_name(db: AsyncEngine, slug: str, name: str) -> None:
    """Changes a row behind the cache's back (no event), to see what the cache serves."""
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE catalog.main_topics SET name = :name WHERE slug = :slug"),
            {"name": name, "slug": slug},
        )


# ── contract ───────────────────────────────────────────────────────────────────────────


async def test_main_topics_shape_and_defaults(api: httpx.AsyncClient) -> None:
    body = await get_ok(api, "/main-topics")
    assert set(body) == {"items", "meta"}
    assert body["meta"] == {"total": len(SEED.main_topics), "page": 1, "per_page": 20}
    assert len(body["items"]) == 20
    for item in body["items"]:
        assert set(item) == TOPIC_FIELDS
        assert set(item["subtopic_count"]) == {"curated", "generated"}
        assert isinstance(item["popularity_score"], float)
        assert isinstance(item["avg_completion_rate"], float)
        assert isinstance(item["total_learners"], int)
    first, seeded = body["items"][0], SEED.main_topics[0]
    assert first["slug"] == seeded.slug
    assert first["name"] == seeded.name
    assert first["category"] == seeded.category
    assert first["estimated_learning_time"] == seeded.estimated_learning_time
    assert first["difficulty_range"] == seeded.difficulty_range
    assert first["subtopic_count"]["curated"] == len(seeded.sub_topics)


async def test_main_topics_category_filter(api: httpx.AsyncClient) -> None:
    body = await get_ok(api, "/main-topics", category="tech", limit=100)
    expected = [t.slug for t in SEED.main_topics if t.category == "tech"]
    assert [t["slug"] for t in body["items"]] == expected
    assert body["meta"] == {"total": len(expected), "page": 1, "per_page": 100}


async def test_main_topics_pagination_edges(api: httpx.AsyncClient) -> None:
    n = len(SEED.main_topics)
    pages = [await get_ok(api, "/main-topics", limit=10, page=p) for p in (1, 2, 3)]
    slugs = [t["slug"] for body in pages for t in body["items"]]
    assert slugs == [t.slug for t in SEED.main_topics]
    assert [len(b["items"]) for b in pages] == [10, 10, n - 20]
    assert all(b["meta"]["total"] == n for b in pages)

    beyond = await get_ok(api, "/main-topics", limit=10, page=4)
    assert beyond == {"items": [], "meta": {"total": n, "page": 4, "per_page": 10}}
    last_one = await get_ok(api, "/main-topics", limit=1, page=n)
    assert [t["slug"] for t in last_one["items"]] == [SEED.main_topics[-1].slug]
    everything = await get_ok(api, "/main-topics", limit=100)
    assert len(everything["items"]) == n
    far = await get_ok(api, "/main-topics", limit=100, page=1_000_000)
    assert far["items"] == []


async def test_main_topic_detail(api: httpx.AsyncClient) -> None:
    seeded = next(t for t in SEED.main_topics if t.slug == "ai-ml")
    body = await get_ok(api, "/main-topics/ai-ml")
    assert set(body) == TOPIC_FIELDS | {"sub_topics"}
    assert [s["slug"] for s in body["sub_topics"]] == [s.slug for s in seeded.sub_topics]
    sub = body["sub_topics"][0]
    assert set(sub) >= CURATED_FIELDS
    assert sub["id"].startswith("curated_")
    assert sub["main_topic_id"] == body["id"]
    assert sub["prerequisites"] == seeded.sub_topics[0].prerequisites
    assert sub["levels"] == seeded.sub_topics[0].levels


async def test_curated_sub_topics_shape_level_and_limit(api: httpx.AsyncClient) -> None:
    seeded = next(t for t in SEED.main_topics if t.slug == "ai-ml")
    main_id = await topic_id(api, "ai-ml")
    body = await get_ok(api, "/sub-topics/curated", main_slug="ai-ml", level="intermediate")
    assert set(body) == {"items"}
    expected = [s for s in seeded.sub_topics if "intermediate" in s.levels]
    assert [s["slug"] for s in body["items"]] == [s.slug for s in expected]
    for item, seed in zip(body["items"], expected, strict=True):
        assert set(item) >= CURATED_FIELDS
        assert item["id"] == f"curated_{int(item['id'].removeprefix('curated_'))}"
        assert item["main_topic_id"] == main_id
        assert item["source_type"] == "curated"
        assert item["name"] == seed.name
        assert item["description"] == seed.description
        assert item["learning_outcomes"] == seed.learning_outcomes
        assert item["quality_score"] == pytest.approx(seed.quality_score)
        assert item["usage_count"] == 0
        assert item["avg_rating"] == 0.0

    every = await get_ok(api, "/sub-topics/curated", main_slug="ai-ml")
    assert len(every["items"]) == len(seeded.sub_topics)
    two = await get_ok(api, "/sub-topics/curated", main_slug="ai-ml", level="intermediate", limit=2)
    assert two["items"] == body["items"][:2]  # the second read is a cache hit, sliced


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/main-topics", {"category": "astrology"}, 422, "category"),
        ("/main-topics", {"category": ""}, 422, "category"),
        ("/main-topics", {"limit": "0"}, 422, "limit"),
        ("/main-topics", {"limit": "101"}, 422, "limit"),
        ("/main-topics", {"limit": "ten"}, 422, "limit"),
        ("/main-topics", {"limit": "2.5"}, 422, "limit"),
        ("/main-topics", {"page": "0"}, 422, "page"),
        ("/main-topics", {"page": "-1"}, 422, "page"),
        ("/main-topics", {"page": "x"}, 422, "page"),
        ("/main-topics", {"page": "99999999999999999999"}, 422, "page"),
        ("/main-topics", {"popular": "maybe"}, 422, "popular"),
        ("/main-topics/no-such-topic", {}, 404, "slug"),
        ("/main-topics/AI-ML", {}, 404, "slug"),
        ("/main-topics/ai-ml%00", {}, 422, "slug"),  # a control character: refused
        ("/sub-topics/curated", {}, 422, "main_slug"),
        ("/sub-topics/curated", {"main_slug": "no-such-topic"}, 404, "main_slug"),
        ("/sub-topics/curated", {"main_slug": "ai-ml", "level": "wizard"}, 422, "level"),
        ("/sub-topics/curated", {"main_slug": "ai-ml", "level": "x" * 50}, 422, "level"),
        ("/sub-topics/curated", {"main_slug": "ai-ml", "limit": "0"}, 422, "limit"),
        ("/sub-topics/curated", {"main_slug": "ai-ml", "limit": "101"}, 422, "limit"),
        ("/sub-topics/curated", {"main_slug": "ai-ml", "limit": "many"}, 422, "limit"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_parameter(
    api: httpx.AsyncClient, path: str, params: dict[str, str], status: int, field: str
) -> None:
    reply = await api.get(path, params=params)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["field"] == field
    assert error["code"]
    assert error["message"]


# ── statistics through the API ─────────────────────────────────────────────────────────


async def test_events_move_the_numbers_and_popular_ranks_by_them(
    api: httpx.AsyncClient, nc: NatsClient
) -> None:
    """A session on a topic shows up in the list, its detail and its curated sub-topics at once
    (the cache is invalidated by CatalogChanged, not left to its TTL)."""
    js = nc.jetstream()
    detail = await get_ok(api, "/main-topics/photography")
    curated = await get_ok(api, "/sub-topics/curated", main_slug="photography")
    popular = await get_ok(api, "/main-topics", category="arts", popular="true")
    assert popular["items"][0]["slug"] != "photography"  # cached now, and not first yet
    sub_id = int(curated["items"][0]["id"].removeprefix("curated_"))

    event = events_pb2.SessionCreated(
        session_id="sess_photo", main_topic_id=detail["id"], curated_sub_topic_ids=[sub_id]
    )
    await publish(js, "events.session.created", event)

    await _until(
        api,
        "/main-topics",
        {"category": "arts", "popular": "true"},
        lambda b: b["items"][0]["slug"] == "photography",
    )
    ranked = await get_ok(api, "/main-topics", category="arts", popular="true")
    assert ranked["items"][0]["total_learners"] == detail["total_learners"] + 1
    scores = [t["popularity_score"] for t in ranked["items"]]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0
    after = await get_ok(api, "/main-topics/photography")
    assert after["total_learners"] == detail["total_learners"] + 1
    after_curated = await get_ok(api, "/sub-topics/curated", main_slug="photography")
    assert after_curated["items"][0]["usage_count"] == curated["items"][0]["usage_count"] + 1


async def _until(
    api: httpx.AsyncClient, path: str, params: dict[str, str], done: Any, timeout: float = 15.0
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await get_ok(api, path, **params)
        if done(body) or loop.time() > deadline:
            assert done(body), body
            return body
        await asyncio.sleep(0.05)


# ── cache ──────────────────────────────────────────────────────────────────────────────


async def test_cache_keys_ttls_and_hits(
    api: httpx.AsyncClient, redis: Redis, db: AsyncEngine
) -> None:
    hits = counter("infou_cache_requests_total", area="main_topics", result="hit")
    misses = counter("infou_cache_requests_total", area="main_topics", result="miss")
    first = await get_ok(api, "/main-topics", category="business")
    assert counter("infou_cache_requests_total", area="main_topics", result="miss") == misses + 1
    second_page = await get_ok(api, "/main-topics", category="business", limit=2, page=2)

    # PRD §5.2: mt:all:v1 for one hour; the query variants are fields of that one key.
    assert await redis.type(cache.MAIN_TOPICS_KEY) == "hash"
    assert await redis.hlen(cache.MAIN_TOPICS_KEY) == 2
    assert 3500 < await redis.ttl(cache.MAIN_TOPICS_KEY) <= 3600

    # A hit is served from Redis: a change made behind the cache's back does not show.
    slug = first["items"][0]["slug"]
    try:
        await set_name(db, slug, "바뀐 이름")
        again = await get_ok(api, "/main-topics", category="business")
        assert again == first
        assert counter("infou_cache_requests_total", area="main_topics", result="hit") == hits + 1
        assert await get_ok(api, "/main-topics", category="business", limit=2, page=2) == (
            second_page
        )
    finally:
        await set_name(db, slug, first["items"][0]["name"])

    # st:c:{main_id}:{level}:v1 for 30 minutes, one key per level ("all" without one).
    main_id = await topic_id(api, "startup")
    await get_ok(api, "/sub-topics/curated", main_slug="startup", level="beginner")
    await get_ok(api, "/sub-topics/curated", main_slug="startup")
    for level in ("beginner", "all"):
        key = f"st:c:{main_id}:{level}:v1"
        assert 1700 < await redis.ttl(key) <= 1800, key
    assert await redis.exists(cache.main_topic_key("startup"))

    # A page far past the end is answered but not kept.
    await get_ok(api, "/main-topics", limit=5, page=999)
    assert await redis.hlen(cache.MAIN_TOPICS_KEY) == 2

    # Hits and misses are Prometheus counters, per area.
    metrics = generate_latest().decode()
    for area in ("main_topics", "main_topic", "subtopics_curated"):
        assert f'infou_cache_requests_total{{area="{area}",result="miss"}}' in metrics
    assert 'infou_cache_requests_total{area="main_topics",result="hit"}' in metrics


async def test_cache_entries_expire(
    api: httpx.AsyncClient, db: AsyncEngine, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAIN_TOPICS_TTL", 1)
    monkeypatch.setattr(cache, "MAIN_TOPIC_TTL", 1)
    monkeypatch.setattr(cache, "CURATED_TTL", 1)
    before = await get_ok(api, "/main-topics", category="language")
    await get_ok(api, "/sub-topics/curated", main_slug="english")
    slug = before["items"][0]["slug"]
    try:
        await set_name(db, slug, "만료 확인")
        assert await get_ok(api, "/main-topics", category="language") == before  # still cached
        await asyncio.sleep(1.3)
        assert not await redis.exists(cache.MAIN_TOPICS_KEY)
        after = await get_ok(api, "/main-topics", category="language")
        assert after["items"][0]["name"] == "만료 확인"
    finally:
        await set_name(db, slug, before["items"][0]["name"])


async def test_catalog_change_invalidates_before_the_ttl(
    api: httpx.AsyncClient, nc: NatsClient, redis: Redis
) -> None:
    main_id = await topic_id(api, "cooking")
    await get_ok(api, "/main-topics", category="life")
    await get_ok(api, "/main-topics", category="life", page=2, limit=1)
    await get_ok(api, "/sub-topics/curated", main_slug="cooking", level="beginner")
    await get_ok(api, "/sub-topics/curated", main_slug="ai-ml")
    ai_id = await topic_id(api, "ai-ml")
    assert (
        await redis.exists(
            cache.MAIN_TOPICS_KEY,
            cache.main_topic_key("cooking"),
            f"st:c:{main_id}:beginner:v1",
            f"st:c:{ai_id}:all:v1",
        )
        == 4
    )

    changed = events_pb2.CatalogChanged(
        main_topic_ids=[main_id], main_topic_slugs=["cooking"], reason="test"
    )
    await publish(nc.jetstream(), "events.catalog.changed", changed)

    async def gone() -> bool:
        return not await redis.exists(
            cache.MAIN_TOPICS_KEY, cache.main_topic_key("cooking"), f"st:c:{main_id}:beginner:v1"
        )

    for _ in range(200):
        if await gone():
            break
        await asyncio.sleep(0.05)
    assert await gone()
    # Other topics' entries stay.
    assert await redis.exists(cache.main_topic_key("ai-ml"), f"st:c:{ai_id}:all:v1") == 2


# ── reads answered from memory (memory_reads.py) ───────────────────────────────────────


def memory_reads() -> float:
    return counter("infou_http_memory_reads_total")


def same_answer(stack: httpx.Response, memory: httpx.Response) -> None:
    """The memory layer's answer is the stack's, byte for byte, but for the requests left (one
    fewer) and the seconds until a slot frees (the clock may have ticked between the two)."""
    assert memory.status_code == stack.status_code == 200
    assert memory.content == stack.content
    moving = (b"x-ratelimit-remaining", b"x-ratelimit-reset")
    assert [(k, v if k not in moving else b"") for k, v in memory.headers.raw] == [
        (k, v if k not in moving else b"") for k, v in stack.headers.raw
    ]
    left = "x-ratelimit-remaining"
    if left in stack.headers:
        assert int(memory.headers[left]) == int(stack.headers[left]) - 1
        assert 1 <= int(memory.headers["x-ratelimit-reset"]) <= 60


@contextlib.asynccontextmanager
async def rate_limited_api(
    settings: GatewaySettings, limit: int
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with a request rate of `limit` a minute, for a client of its own."""
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": limit}))
    peer = (f"2001:db8:{uuid.uuid4().hex[:4]}::9", 5000)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.parametrize(
    "path",
    [
        "/levels",
        "/main-topics?category=tech&limit=5",
        "/main-topics/ai-ml",
        "/sub-topics/curated?main_slug=ai-ml&level=beginner&limit=3",
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer st_whoever"}])
async def test_a_read_held_in_memory_is_answered_as_the_stack_answers_it(
    catalog_db: str,
    private_nats_url: str,
    redis_db_url: str,
    catalog_port: int,
    path: str,
    headers: dict[str, str],
) -> None:
    settings = _settings(catalog_db, private_nats_url, redis_db_url, catalog_port)
    async with rate_limited_api(settings, 100) as api:
        before = memory_reads()
        stack = await api.get(path, headers=headers)
        assert memory_reads() == before  # the first one went through routing
        memory = await api.get(path, headers=headers)
        assert memory_reads() == before + 1
    same_answer(stack, memory)
    assert memory.headers["x-ratelimit-limit"] == "100"
    assert memory.headers["x-content-type-options"] == "nosniff"
    # With a token the answer may be personal: no one may store it, on either path.
    assert ("cache-control" in memory.headers) == bool(headers)


async def test_only_the_same_request_is_answered_from_memory(api: httpx.AsyncClient) -> None:
    await get_ok(api, "/main-topics", category="arts")
    before = memory_reads()
    # Another query string, a CORS request, a HEAD: the stack answers (and may add its headers).
    assert (await api.get("/main-topics", params={"category": "arts", "limit": 3})).is_success
    cors = await api.get(
        "/main-topics", params={"category": "arts"}, headers={"Origin": "http://localhost:3000"}
    )
    assert cors.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert (await api.head("/main-topics", params={"category": "arts"})).status_code == 405
    bad = await api.get("/main-topics", params={"category": "arts", "limit": 0})
    assert bad.status_code == 422
    assert memory_reads() == before


async def test_a_catalog_change_drops_the_read_held_in_memory(
    api: httpx.AsyncClient, nc: NatsClient, db: AsyncEngine, redis: Redis
) -> None:
    first = await get_ok(api, "/main-topics/photography")
    before = memory_reads()
    assert await get_ok(api, "/main-topics/photography") == first
    assert memory_reads() == before + 1
    try:
        await set_name(db, "photography", "사진 (바뀜)")
        assert (await get_ok(api, "/main-topics/photography"))["name"] == first["name"]  # held
        changed = events_pb2.CatalogChanged(
            main_topic_ids=[first["id"]], main_topic_slugs=["photography"], reason="test"
        )
        await publish(nc.jetstream(), "events.catalog.changed", changed)
        for _ in range(200):
            if not await redis.exists(cache.main_topic_key("photography")):
                break
            await asyncio.sleep(0.05)
        held = memory_reads()
        after = await get_ok(api, "/main-topics/photography")
        assert after["name"] == "사진 (바뀜)"
        assert memory_reads() == held  # dropped here too: the stack loaded it again
    finally:
        await set_name(db, "photography", first["name"])


async def test_a_read_held_in_memory_still_counts_against_the_rate(
    catalog_db: str, private_nats_url: str, redis_db_url: str, catalog_port: int
) -> None:
    settings = _settings(catalog_db, private_nats_url, redis_db_url, catalog_port)
    async with rate_limited_api(settings, 3) as api:
        before = memory_reads()
        answers = [await api.get("/levels") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert memory_reads() == before + 2
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[3].json()["error"]["code"] == "RATE_LIMITED"
    assert int(answers[3].headers["retry-after"]) > 0


async def test_a_read_held_in_memory_is_traced_when_its_trace_is_sampled(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    # Parent-based, and no new trace sampled: only a caller's sampled traceparent records one.
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(memory_layer, "_TRACER", provider.get_tracer("test"))
    await get_ok(api, "/levels")  # held from now on
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    before = counter("infou_http_memory_reads_total")
    for flags in ("00", "01"):
        reply = await api.get(
            "/levels", headers={"traceparent": f"00-{trace_id}-{parent_id}-{flags}"}
        )
        assert reply.status_code == 200
    assert (await api.get("/levels")).status_code == 200  # a new trace: not sampled
    assert counter("infou_http_memory_reads_total") == before + 3
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /levels"]
    span = spans[0]
    assert span.kind == SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_id
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/levels"
    assert span.attributes["http.status_code"] == 200


async def test_redis_down_fails_open(
    catalog_db: str, private_nats_url: str, catalog_port: int
) -> None:
    closed = engines.free_port()
    settings = _settings(
        catalog_db, private_nats_url, f"redis://127.0.0.1:{closed}/0", catalog_port
    )
    errors_before = counter("infou_cache_errors_total", operation="get")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            listed = await get_ok(client, "/main-topics", popular="true", limit=5)
            detail = await get_ok(client, "/main-topics/ai-ml")
            curated = await get_ok(client, "/sub-topics/curated", main_slug="ai-ml", limit=3)
            bad = await client.get("/sub-topics/curated", params={"main_slug": "nope"})
            async with httpx.AsyncClient() as scraper:
                metrics = await scraper.get(f"http://127.0.0.1:{app.state.metrics_port}/metrics")
    assert len(listed["items"]) == 5
    assert detail["slug"] == "ai-ml"
    assert len(curated["items"]) == 3
    assert bad.status_code == 404
    # Every lookup was counted as a cache error and answered by the service.
    assert counter("infou_cache_errors_total", operation="get") >= errors_before + 4
    assert 'infou_cache_errors_total{operation="get"}' in metrics.text
