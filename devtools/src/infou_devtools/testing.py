"""pytest plugin (loaded with `-p infou_devtools.testing`): real engines for every test suite.

Each engine is the machine's when INFOU_TEST_DATABASE_URL / INFOU_TEST_NATS_URL /
INFOU_TEST_REDIS_URL is set, otherwise an embedded server started once per test run.
Each test run gets its own fresh database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from infou_devtools import engines


def pytest_configure() -> None:
    # Test clients all come from 127.0.0.1 and poll: the per-client limits would refuse them.
    # The limits' own tests build their app (or stack) with explicit limits.
    os.environ.setdefault("INFOU_RATE_LIMIT_PER_MINUTE", "0")
    os.environ.setdefault("INFOU_SESSIONS_PER_CLIENT_PER_DAY", "0")
    os.environ.setdefault("INFOU_GENERATIONS_PER_CLIENT_PER_DAY", "0")


def _engine_url(
    env: str, start: Any, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[str]:
    url = os.environ.get(env)
    if url:
        yield url
        return
    server = start(tmp_path_factory.mktemp(name))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server (machine or embedded)."""
    yield from _engine_url(
        "INFOU_TEST_DATABASE_URL",
        lambda d: engines.start_postgres(d, fast=True),
        tmp_path_factory,
        "postgres",
    )


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NATS server with JetStream (machine or embedded)."""
    yield from _engine_url("INFOU_TEST_NATS_URL", engines.start_nats, tmp_path_factory, "nats")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis-protocol server (machine Redis or embedded Valkey)."""
    yield from _engine_url(
        "INFOU_TEST_REDIS_URL",
        lambda d: engines.start_valkey(d, persist=False),
        tmp_path_factory,
        "valkey",
    )


@contextlib.asynccontextmanager
async def temporary_database(pg_server_url: str, prefix: str = "infou_test") -> AsyncIterator[str]:
    """A database created for the caller and dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = await engines.ensure_database(pg_server_url, name)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            await engines.drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database for this test run."""
    async with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
async def module_database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A database of its own for one test module."""
    async with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture
async def fresh_database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A database of its own for one test (migration round trips, seeds)."""
    async with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded NATS server private to one test module, for tests that count events:
    the shared server carries other suites' events too."""
    server = engines.start_nats(tmp_path_factory.mktemp("module-nats"))
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def running_service(spec: Any, settings: Any) -> AsyncIterator[int]:
    """Runs a service in this process on a free port; yields the gRPC port."""
    from infou_libs.runtime import serve

    port = engines.free_port()
    settings = settings.model_copy(update={"grpc_port": port, "metrics_port": 0})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(spec, settings, stop))
    try:
        await _wait_grpc(port, task)
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _wait_grpc(port: int, task: asyncio.Task[None], timeout: float = 30.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while loop.time() < deadline:
            if task.done():
                task.result()
                raise RuntimeError("service exited before serving")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"service on port {port} not serving after {timeout}s")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]
