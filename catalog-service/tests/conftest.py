"""catalog-service under test: a whole service in-process, on its own database and NATS.

Its NATS server is private to each test module: the shared one carries other suites'
`events.session.created` and friends, which this service would otherwise count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from infou_catalog.main import SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_libs.messaging import connect, ensure_streams
from infou_protos.catalog.v1 import catalog_pb2_grpc

T = TypeVar("T")


@pytest.fixture(scope="module")
def catalog_nats_url(module_nats_url: str) -> str:
    return module_nats_url


@pytest.fixture(scope="module")
def catalog_database_url(module_database_url: str) -> str:
    return module_database_url


@pytest.fixture(scope="module")
async def catalog_port(catalog_database_url: str, catalog_nats_url: str) -> AsyncIterator[int]:
    settings = CatalogSettings(
        environment="test",
        database_url=catalog_database_url,
        nats_url=catalog_nats_url,
        # Every statistics event announces at once here; test_announce_coalescing covers the
        # coalesced window.
        catalog_stats_announce_seconds=0,
    )
    async with running_service(SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def catalog(catalog_port: int) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog_port}") as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="module")
async def nc(catalog_nats_url: str) -> AsyncIterator[NatsClient]:
    client = await connect(catalog_nats_url, "catalog-tests")
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def js(nc: NatsClient) -> JetStreamContext:
    js = nc.jetstream()
    await ensure_streams(js)
    return js


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


@pytest.fixture
def eventually() -> Callable[..., Awaitable[object]]:
    """`await eventually(probe, done)`: polls until done(probe()) or a timeout, returns the last."""
    return _eventually
