"""session-service under test: the real service and catalog-service in-process, on a database
and a NATS server of this test module; the test plays the generation worker through JetStream."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_generation.main import API_SPEC as GENERATION_API_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.db import asyncpg_url
from infou_libs.grpc_client import domain_error_from
from infou_libs.messaging import JOBS_STREAM, connect, ensure_streams, new_event_id, publish
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2
from infou_protos.session.v1 import session_pb2_grpc
from infou_session.main import SPEC as SESSION_SPEC
from infou_session.settings import SessionSettings

T = TypeVar("T")


@pytest.fixture(scope="module")
async def catalog_port(module_database_url: str, module_nats_url: str) -> AsyncIterator[int]:
    settings = CatalogSettings(
        environment="test", database_url=module_database_url, nats_url=module_nats_url
    )
    async with running_service(CATALOG_SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def generation_port(
    module_database_url: str, module_nats_url: str, catalog_port: int
) -> AsyncIterator[int]:
    """generation-service's gRPC API (sub-topics, the budget's admissions) without its job
    workers: the test plays the worker (`Worker`)."""
    settings = GenerationSettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        catalog_addr=f"127.0.0.1:{catalog_port}",
        # A priced provider, so admissions estimate real money (no call is ever made here).
        local_llm_base_url="http://127.0.0.1:9/v1",
    )
    async with running_service(GENERATION_API_SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
def session_settings(
    module_database_url: str, module_nats_url: str, catalog_port: int, generation_port: int
) -> SessionSettings:
    return SessionSettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        catalog_addr=f"127.0.0.1:{catalog_port}",
        generation_addr=f"127.0.0.1:{generation_port}",
        grpc_deadline_seconds=2.0,
    )


@pytest.fixture(scope="module")
async def session_port(session_settings: SessionSettings) -> AsyncIterator[int]:
    async with running_service(SESSION_SPEC, session_settings) as port:
        yield port


@pytest.fixture(scope="module")
async def stub(session_port: int) -> AsyncIterator[session_pb2_grpc.SessionServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{session_port}") as channel:
        yield session_pb2_grpc.SessionServiceStub(channel)


@pytest.fixture(scope="module")
async def catalog(catalog_port: int) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog_port}") as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(module_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(module_nats_url, "session-tests")
    await ensure_streams(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(scope="module")
def js(nc: NatsClient) -> JetStreamContext:
    return nc.jetstream()


@dataclass
class Topic:
    id: int
    curated: list[int]


@pytest.fixture(scope="module")
async def topics(catalog: catalog_pb2_grpc.CatalogServiceAsyncStub) -> list[Topic]:
    """The seeded main topics with their curated sub-topic ids."""
    reply = await catalog.ListMainTopics(catalog_pb2.ListMainTopicsRequest(limit=100))
    result = []
    for topic in reply.items[:3]:
        detail = await catalog.GetMainTopic(catalog_pb2.GetMainTopicRequest(id=topic.id))
        result.append(Topic(topic.id, [s.id for s in detail.sub_topics]))
    return result


@dataclass
class Worker:
    """Plays generation-service: takes jobs off the JOBS work queue, publishes results."""

    js: JetStreamContext
    sub: JetStreamContext.PullSubscription

    async def job(self, subject: str, payload: type[T], timeout: float = 10.0) -> T:
        """The next job on `subject` (acked); other subjects' jobs are put back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                msgs = await self.sub.fetch(1, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                if msg.subject == subject:
                    await msg.ack()
                    return payload.FromString(msg.data)  # type: ignore[attr-defined,no-any-return]
                await msg.nak(delay=0.2)
        raise TimeoutError(f"no job on {subject}")

    async def jobs(self, subject: str, payload: type[T], count: int) -> list[T]:
        return [await self.job(subject, payload) for _ in range(count)]

    async def drain(self) -> int:
        """Acks whatever is queued (jobs of earlier tests)."""
        count = 0
        while True:
            try:
                msgs = await self.sub.fetch(50, timeout=0.3)
            except (TimeoutError, NatsTimeoutError):
                return count
            for msg in msgs:
                await msg.ack()
                count += 1

    async def answer(self, subject: str, event: Message, event_id: str | None = None) -> str:
        event_id = event_id or new_event_id()
        await publish(self.js, subject, event, event_id=event_id)
        return event_id


@pytest.fixture(scope="module")
async def worker(js: JetStreamContext, session_port: int) -> AsyncIterator[Worker]:  # noqa: ARG001 — requested so the service runs
    sub = await js.pull_subscribe(
        "jobs.>",
        durable="test-generation-worker",
        stream=JOBS_STREAM,
        config=ConsumerConfig(ack_wait=30, max_deliver=-1),
    )
    yield Worker(js, sub)
    await sub.unsubscribe()


@dataclass
class ProgressLog:
    """Every progress message seen on progress.session.*, per session."""

    messages: dict[str, list[events_pb2.SessionProgress]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def of(self, session_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            {"type": m.type, "sequence": m.sequence, **json.loads(m.data_json)}
            for m in self.messages[session_id]
            if kind is None or m.type == kind
        ]


@pytest.fixture(scope="module")
async def progress_log(nc: NatsClient) -> AsyncIterator[ProgressLog]:
    log = ProgressLog()

    async def on_message(msg: Msg) -> None:
        event = events_pb2.SessionProgress.FromString(msg.data)
        log.messages[event.session_id].append(event)

    sub = await nc.subscribe("progress.session.*", cb=on_message)
    yield log
    await sub.unsubscribe()


def _rpc_error(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    error = domain_error_from(exc)
    return exc.code(), error.code, error.field or ""


@pytest.fixture
def rpc_error() -> Callable[[grpc.aio.AioRpcError], tuple[grpc.StatusCode, str, str]]:
    """(status, infou error code, field) of a failed call."""
    return _rpc_error


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """`await eventually(probe, done)`: polls until done(probe()) or a timeout, returns the last."""
    return _eventually


async def _eventually(
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
