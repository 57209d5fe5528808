"""The pool never hands a use case a connection the server dropped, and pings only idle ones."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from infou_libs.db import PING, create_engine, session_factory, unit_of_work


class _Driver:
    """What the pool's driver connections send outside prepared statements (BEGIN, COMMIT,
    pings): asyncpg's own query log."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.queries: list[str] = []
        self.connections: list[Any] = []
        self.closed: list[asyncio.Event] = []
        event.listen(engine.sync_engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        connection = dbapi_connection.driver_connection
        closed = asyncio.Event()
        connection.add_query_logger(lambda query: self.queries.append(query.query))
        connection.add_termination_listener(lambda _conn: closed.set())
        self.connections.append(connection)
        self.closed.append(closed)

    async def settle(self) -> None:
        # asyncpg hands query records to its loggers with call_soon.
        for _ in range(3):
            await asyncio.sleep(0)


@pytest.fixture
async def pool() -> AsyncIterator[Callable[[str, float], AsyncEngine]]:
    """Makes one-connection engines (pool_size 1) and disposes of them after the test."""
    made: list[AsyncEngine] = []

    def make(url: str, ping_idle_seconds: float) -> AsyncEngine:
        made.append(create_engine(url, "public", pool_size=1, ping_idle_seconds=ping_idle_seconds))
        return made[-1]

    yield make
    for engine in made:
        await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with unit_of_work(session_factory(engine)) as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_busy_pool_does_not_ping(
    database_url: str, pool: Callable[[str, float], AsyncEngine]
) -> None:
    engine = pool(database_url, 60)
    driver = _Driver(engine)
    pid = await _backend_pid(engine)
    for _ in range(20):
        assert await _backend_pid(engine) == pid  # the one pooled connection, reused
    await driver.settle()
    # Only each use case's own transaction: no ping (pool_pre_ping added BEGIN; ;ROLLBACK).
    assert driver.queries == ["BEGIN;", "COMMIT;"] * 21


async def test_an_idle_connection_is_pinged_once_per_checkout(
    database_url: str, pool: Callable[[str, float], AsyncEngine]
) -> None:
    engine = pool(database_url, 0.05)
    driver = _Driver(engine)
    for _ in range(3):
        await _backend_pid(engine)
        await asyncio.sleep(0.1)  # idle past the threshold
    await driver.settle()
    # The first checkout has a fresh connection: nothing to check.
    assert driver.queries == ["BEGIN;", "COMMIT;"] + [PING, "BEGIN;", "COMMIT;"] * 2


async def _terminate(killer: AsyncEngine, pid: int) -> None:
    async with killer.connect() as conn:
        # With a timeout, returns once the backend has exited (PostgreSQL 14+).
        ended = await conn.scalar(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
        assert ended is True


async def test_a_connection_terminated_while_idle_is_replaced(
    database_url: str, pool: Callable[[str, float], AsyncEngine]
) -> None:
    """The driver saw the server close it: discarded at checkout without a round trip."""
    engine = pool(database_url, 3600)
    driver = _Driver(engine)
    pid = await _backend_pid(engine)
    await _terminate(pool(database_url, 0), pid)
    # Until the loop has read the server's FATAL and close.
    await asyncio.wait_for(driver.closed[0].wait(), 10)

    new_pid = await _backend_pid(engine)  # the use case succeeds, on a new connection
    assert new_pid != pid
    assert len(driver.connections) == 2
    await driver.settle()
    assert PING not in driver.queries


class _Blackhole:
    """A TCP relay to PostgreSQL that can drop its connections silently, as a NAT or a firewall
    drops idle ones: the server side ends, the client hears nothing until it next sends (then
    a reset)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._servers: list[asyncio.StreamWriter] = []
        self._dropped: set[asyncio.StreamWriter] = set()
        self.resets = 0  # sends that met a dropped connection

    async def link(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.upstream)
        self._servers.append(s_writer)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    if s_writer in self._dropped:
                        self.resets += 1
                        c_writer.transport.abort()
                        return
                    writer.write(data)
                    await writer.drain()
            if s_writer not in self._dropped:
                writer.close()  # an ordinary close passes through

        await asyncio.gather(pipe(c_reader, s_writer), pipe(s_reader, c_writer))

    def drop_all(self) -> None:
        self._dropped.update(self._servers)
        for server in self._servers:
            server.transport.abort()


@pytest.fixture
async def blackhole(database_url: str) -> AsyncIterator[tuple[_Blackhole, str]]:
    url = make_url(database_url)
    relay = _Blackhole(url.host or "127.0.0.1", url.port or 5432)
    server = await asyncio.start_server(relay.link, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield relay, url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        server.close()


async def test_a_connection_dropped_silently_is_replaced_after_the_idle_threshold(
    blackhole: tuple[_Blackhole, str], pool: Callable[[str, float], AsyncEngine]
) -> None:
    relay, url = blackhole
    engine = pool(url, 0.05)
    driver = _Driver(engine)
    pid = await _backend_pid(engine)
    relay.drop_all()
    await asyncio.sleep(0.1)  # idle past the threshold
    assert not driver.connections[0].is_closed()  # nothing told the driver

    new_pid = await _backend_pid(engine)  # the ping failed: the use case got a new one
    assert new_pid != pid
    assert relay.resets == 1  # the ping, and only it, met the dropped connection
    await driver.settle()
    assert driver.queries == ["BEGIN;", "COMMIT;"] * 2  # the new connection: no ping


async def test_a_silent_drop_within_the_idle_threshold_fails_one_use_case(
    blackhole: tuple[_Blackhole, str], pool: Callable[[str, float], AsyncEngine]
) -> None:
    """The price of not pinging a busy pool: the next use case meets the dead connection and
    fails with a disconnect; the pool discards it and the one after succeeds."""
    relay, url = blackhole
    engine = pool(url, 3600)
    pid = await _backend_pid(engine)
    relay.drop_all()
    with pytest.raises(DBAPIError) as failure:
        await _backend_pid(engine)
    assert failure.value.connection_invalidated
    assert await _backend_pid(engine) != pid
