"""feedback-service under test.

Use cases run against a real Postgres migrated to the feedback schema (`sessions`), with the
facts session-service would give (`access`). The service tests run the real catalog-, session-
and feedback-services in-process on a database and NATS of their module; the test plays the
generation worker so that sessions get written articles (`learner`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_feedback.main import MIGRATIONS
from infou_feedback.main import SPEC as FEEDBACK_SPEC
from infou_feedback.models import SCHEMA, outbox
from infou_feedback.session_access import Access
from infou_feedback.settings import FeedbackSettings
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.db import create_engine, session_factory
from infou_libs.grpc_client import domain_error_from
from infou_libs.messaging import JOBS_STREAM, connect, ensure_streams, new_event_id, publish
from infou_libs.migrations import upgrade_async
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2
from infou_protos.feedback.v1 import feedback_pb2_grpc
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

T = TypeVar("T")

# ── use cases on a real database ───────────────────────────────────────────────────────


async def migrated_sessions(url: str) -> tuple[Any, async_sessionmaker[AsyncSession]]:
    await upgrade_async(MIGRATIONS, url, SCHEMA)
    engine = create_engine(url, SCHEMA)
    return engine, session_factory(engine)


@pytest.fixture
async def sessions(fresh_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The feedback schema, migrated, on a database of this test's own."""
    engine, factory = await migrated_sessions(fresh_database_url)
    yield factory
    await engine.dispose()


def access(
    session_id: str = "sess_test",
    article_id: str = "",
    *,
    articles: int = 4,
    level: str = "intermediate",
    adaptive: bool = False,
    word_counts: dict[str, int] | None = None,
    sub_topic: tuple[str, int] = ("curated", 1),
) -> Access:
    """What session-service would say about `session_id` (articles <id>_001 …)."""
    ids = tuple(f"{session_id}_{n:03d}" for n in range(1, articles + 1))
    return Access(
        session_id=session_id,
        main_topic_id=1,
        session_level=level,
        adaptive_difficulty=adaptive,
        total_articles=articles,
        article_ids=ids,
        article_id=article_id,
        level=level,
        sub_topic_type=sub_topic[0],
        sub_topic_id=sub_topic[1],
        word_count=(word_counts or {}).get(article_id, 0),
    )


async def outbox_events(
    factory: async_sessionmaker[AsyncSession], subject: str, kind: type[T]
) -> list[T]:
    """The events of `subject` in the outbox, oldest first."""
    async with factory() as db:
        # Through the table, whose payload column decrypts (event payloads are encrypted).
        rows = await db.execute(
            select(outbox.c.payload).where(outbox.c.subject == subject).order_by(outbox.c.id)
        )
        return [kind.FromString(bytes(r[0])) for r in rows]  # type: ignore[attr-defined]


# ── the services over gRPC ─────────────────────────────────────────────────────────────


@dataclass
class Ports:
    catalog: int
    session: int
    feedback: int


@pytest.fixture(scope="module")
async def ports(module_database_url: str, module_nats_url: str) -> AsyncIterator[Ports]:
    common: dict[str, Any] = {"environment": "test", "database_url": module_database_url}
    catalog = CatalogSettings(**common, nats_url=module_nats_url)
    # Session creation is admitted by generation-service (the LLM budget): its gRPC API runs.
    generation = GenerationSettings(
        **common,
        nats_url=module_nats_url,
        catalog_addr="127.0.0.1:1",
    )
    async with (
        running_service(CATALOG_SPEC, catalog) as catalog_port,
        running_service(GENERATION_API_SPEC, generation) as generation_port,
    ):
        session = SessionSettings(
            **common,
            nats_url=module_nats_url,
            catalog_addr=f"127.0.0.1:{catalog_port}",
            generation_addr=f"127.0.0.1:{generation_port}",
        )
        async with running_service(SESSION_SPEC, session) as session_port:
            feedback = FeedbackSettings(
                **common, nats_url=module_nats_url, session_addr=f"127.0.0.1:{session_port}"
            )
            async with running_service(FEEDBACK_SPEC, feedback) as feedback_port:
                yield Ports(catalog_port, session_port, feedback_port)


@pytest.fixture(scope="module")
async def feedback_stub(ports: Ports) -> AsyncIterator[feedback_pb2_grpc.FeedbackServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.feedback}") as channel:
        yield feedback_pb2_grpc.FeedbackServiceStub(channel)


@pytest.fixture(scope="module")
async def session_stub(ports: Ports) -> AsyncIterator[session_pb2_grpc.SessionServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.session}") as channel:
        yield session_pb2_grpc.SessionServiceStub(channel)


@pytest.fixture(scope="module")
async def catalog_stub(ports: Ports) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.catalog}") as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="module")
async def module_sessions(
    module_database_url: str,
    ports: Ports,  # noqa: ARG001 — requested so the services run
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The module database's feedback schema (the running service migrated it)."""
    engine = create_engine(module_database_url, SCHEMA)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(module_nats_url, "feedback-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@dataclass
class Learner:
    """A learner with a written session: plays generation-service for session-service."""

    js: JetStreamContext
    jobs: JetStreamContext.PullSubscription
    session: session_pb2_grpc.SessionServiceAsyncStub
    catalog: catalog_pb2_grpc.CatalogServiceAsyncStub

    async def _job(self, subject: str, payload: type[T], timeout: float = 15.0) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                msgs = await self.jobs.fetch(1, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
                if msg.subject == subject:
                    return payload.FromString(msg.data)  # type: ignore[attr-defined,no-any-return]
        raise TimeoutError(f"no job on {subject}")

    async def curated(self, topic_index: int = 0) -> tuple[int, list[int]]:
        """A seeded main topic and its curated sub-topic ids."""
        topics = await self.catalog.ListMainTopics(catalog_pb2.ListMainTopicsRequest(limit=10))
        topic = topics.items[topic_index]
        detail = await self.catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(id=topic.id))
        return topic.id, [s.id for s in detail.sub_topics]

    async def written_session(
        self,
        *,
        articles: int = 3,
        level: str = "intermediate",
        adaptive: bool = False,
        word_counts: tuple[int, ...] = (),
        topic_index: int = 0,
    ) -> tuple[session_pb2.CreateSessionResponse, list[str], int, int]:
        """(created, article ids in order, main topic id, curated sub-topic id)."""
        topic_id, curated = await self.curated(topic_index)
        created = await self.session.CreateSession(
            session_pb2.CreateSessionRequest(
                main_topic_id=topic_id,
                sub_topics=[session_pb2.SubTopicRef(type="curated", id=curated[0])],
                level=level,
                options=session_pb2.SessionOptions(
                    max_articles_per_subtopic=articles, enable_adaptive_difficulty=adaptive
                ),
            )
        )
        await self._job("jobs.curriculum.generate", events_pb2.GenerateCurriculumJob)
        ref = f"curated_{curated[0]}"
        await self._answer(
            "events.generation.curriculum_generated",
            events_pb2.CurriculumGenerated(
                session_id=created.session_id,
                title="피드백 학습",
                items=[
                    events_pb2.PlannedArticle(title=f"글 {n}", summary="요약", sub_topic_ref=ref)
                    for n in range(1, articles + 1)
                ],
                usage=_usage(),
            ),
        )
        ids = []
        for _ in range(articles):
            job = await self._job("jobs.article.generate", events_pb2.GenerateArticleJob)
            order = int(job.article_id.rsplit("_", 1)[1])
            words = word_counts[order - 1] if len(word_counts) >= order else 300
            await self._answer(
                "events.generation.article_generated",
                events_pb2.ArticleGenerated(
                    session_id=job.session_id,
                    article_id=job.article_id,
                    article=events_pb2.WrittenArticle(
                        content=f"## {job.article_id}\n\n본문",
                        word_count=words,
                        title=f"글 {order}",
                        quality_score=0.8,
                    ),
                    usage=_usage(),
                ),
            )
            ids.append(job.article_id)
        await self.wait_ready(created)
        return created, sorted(ids), topic_id, curated[0]

    async def wait_ready(self, created: session_pb2.CreateSessionResponse) -> None:
        async def status() -> str:
            reply = await self.session.GetSession(
                session_pb2.GetSessionRequest(
                    session_id=created.session_id, access_token=created.access_token
                )
            )
            return reply.status

        await eventually(status, lambda s: s == "ready")

    async def _answer(self, subject: str, event: Any) -> None:
        await publish(self.js, subject, event, event_id=new_event_id())


def _usage() -> events_pb2.GenerationUsage:
    return events_pb2.GenerationUsage(
        model="fake-model", provider="openai", input_tokens=10, output_tokens=20, cost_usd=0.001
    )


@pytest.fixture(scope="module")
async def learner(
    nc: NatsClient,
    ports: Ports,  # noqa: ARG001 — requested so the services run
    session_stub: session_pb2_grpc.SessionServiceAsyncStub,
    catalog_stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
) -> AsyncIterator[Learner]:
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        "jobs.>",
        durable="feedback-test-worker",
        stream=JOBS_STREAM,
        config=ConsumerConfig(ack_wait=30, max_deliver=-1),
    )
    yield Learner(js, sub, session_stub, catalog_stub)
    await sub.unsubscribe()


def rpc_error(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    """(status, infou error code, field) of a failed call."""
    error = domain_error_from(exc)
    return exc.code(), error.code, error.field or ""


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 15.0
) -> T:
    """Polls `probe` until `done(result)`; returns the last result (the caller asserts on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    result = await probe()
    while not done(result) and loop.time() < deadline:
        await asyncio.sleep(0.05)
        result = await probe()
    return result


# Test modules are imported on their own (importlib mode): helpers reach them as fixtures.


@pytest.fixture(name="access")
def access_fixture() -> Callable[..., Access]:
    return access


@pytest.fixture(name="outbox_events")
def outbox_events_fixture() -> Callable[..., Awaitable[list[Any]]]:
    return outbox_events


@pytest.fixture(name="rpc_error")
def rpc_error_fixture() -> Callable[[grpc.aio.AioRpcError], tuple[grpc.StatusCode, str, str]]:
    return rpc_error


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Awaitable[Any]]:
    return eventually
