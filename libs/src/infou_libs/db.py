"""Async SQLAlchemy 2.0 engine and sessions bound to one service's own schema."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from infou_libs.logging import get_logger

log = get_logger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """MetaData for one service: its schema and the project's constraint naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    """Normalises postgres:// and postgresql:// URLs to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str, schema: str, *, pool_size: int = 10, ping_idle_seconds: float = 5.0
) -> AsyncEngine:
    """An engine whose connections see the service's schema first on the search_path."""
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Last in, first out: under steady load the same few connections stay warm (no idle
        # ping) and the rest sit idle, to be pinged once when a burst needs them.
        pool_use_lifo=True,
        # Statement parameters are learner text: never in an exception message or a log line.
        hide_parameters=True,
        connect_args={"server_settings": {"search_path": f"{schema},public"}},
    )
    _check_on_checkout(engine, ping_idle_seconds)
    return engine


# When a pooled connection went back to the pool (absent: fresh from connect, never used).
_IDLE_SINCE = "infou_idle_since"
# One round trip in the simple query protocol: no transaction, no prepared statement (PgBouncer).
PING = "SELECT 1"


def _check_on_checkout(engine: AsyncEngine, ping_idle_seconds: float) -> None:
    """A connection the server dropped is never handed to a use case (SQLAlchemy's "Dealing
    with Disconnects", custom pessimistic ping): replaces pool_pre_ping, which with asyncpg
    paid three round trips (BEGIN; SELECT; ROLLBACK) on every checkout.

    - every checkout: free, the driver already saw the server close the socket (a terminated
      backend, a restart, idle_session_timeout);
    - idle at least `ping_idle_seconds` (0: every reuse): one round trip, for what shows only on
      the wire (a NAT or firewall that dropped an idle connection).
    A dead connection raises DisconnectionError: the pool discards it and hands out a new one.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None:
            return
        idle = time.monotonic() - idle_since
        if dbapi_connection.driver_connection.is_closed():
            _discard("closed_by_server", idle)
        if idle >= ping_idle_seconds:
            try:
                dbapi_connection.run_async(lambda conn: conn.execute(PING))
            except Exception as exc:
                _discard(f"ping_failed:{type(exc).__name__}", idle)


def _discard(reason: str, idle: float) -> NoReturn:
    log.warning("db_connection_discarded", reason=reason, idle_seconds=round(idle, 1))
    raise DisconnectionError(reason)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One use case, one transaction: commits on success, rolls back on any error."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def autocommit(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own: for a use case of one statement,
    which then needs no BEGIN and COMMIT round trips and holds no lock across one."""
    async with factory() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
