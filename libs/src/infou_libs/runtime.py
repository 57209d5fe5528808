"""Process entry for every gRPC service: settings → telemetry → DB → NATS → gRPC → consumers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from infou_libs import crypto
from infou_libs.db import create_engine, ping, session_factory
from infou_libs.encrypted_columns import rotate
from infou_libs.grpc_server import GrpcServer, Registration
from infou_libs.logging import configure_logging, get_logger
from infou_libs.messaging import DurableConsumer, connect, ensure_streams
from infou_libs.messaging import close as close_nats
from infou_libs.metrics import (
    DB_POOL_CAPACITY,
    DB_POOL_IN_USE,
    DEPENDENCY_UP,
    start_metrics_server,
)
from infou_libs.migrations import upgrade_async
from infou_libs.outbox import OutboxRelay
from infou_libs.retention import Sweep, run_periodically
from infou_libs.settings import CommonSettings
from infou_libs.telemetry import configure_tracing

log = get_logger(__name__)


@dataclass
class Runtime:
    """What a running service holds; handed to its build and consumer factories."""

    settings: CommonSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nc: NatsClient
    js: JetStreamContext
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class ServiceSpec:
    """How one service is put together."""

    name: str
    schema: str
    migrations_dir: Path
    outbox: Table
    build: Callable[[Runtime], Awaitable[Sequence[Registration]]]
    consumers: Callable[[Runtime], Sequence[DurableConsumer]] = lambda _rt: ()
    commands: dict[str, Callable[[CommonSettings], Coroutine[Any, Any, None]]] = field(
        default_factory=dict
    )
    # Deletes or anonymises this service's personal data past its time (infou_libs.retention).
    retention: Sweep | None = None


async def migrate(spec: ServiceSpec, settings: CommonSettings) -> None:
    url = settings.database_session_url or settings.database_url
    await upgrade_async(spec.migrations_dir, url, spec.schema)
    log.info("migrations_applied", schema=spec.schema)


async def rotate_keys(spec: ServiceSpec, settings: CommonSettings) -> int:
    """`python -m infou_<name> rotate-keys`: re-wraps every encrypted value of the service not
    under the newest INFOU_DATA_KEYS key (the old keys can then be dropped)."""
    ring = crypto.configure(settings.data_keys.get_secret_value())
    engine = create_engine(settings.database_url, spec.schema, pool_size=1)
    try:
        changed = await rotate(engine, spec.outbox.metadata, ring)
    finally:
        await engine.dispose()
    log.info("data_keys_rotated", values=changed, key=ring.current)
    print(f"{spec.name}: {changed} values re-encrypted under key {ring.current!r}")
    return changed


async def serve(spec: ServiceSpec, settings: CommonSettings, stop: asyncio.Event) -> None:
    """Runs the service until `stop` is set, then shuts down in reverse order."""
    await migrate(spec, settings)
    engine = create_engine(
        settings.database_url,
        spec.schema,
        pool_size=settings.database_pool_size,
        ping_idle_seconds=settings.database_ping_idle_seconds,
    )
    nc = await connect(settings.nats_url, f"infou-{spec.name}")
    js = nc.jetstream()
    await ensure_streams(js)
    rt = Runtime(settings, engine, session_factory(engine), nc, js)
    relay = OutboxRelay(
        rt.sessions, spec.outbox, js, settings.database_session_url or settings.database_url
    )
    await relay.start()
    server = GrpcServer(spec.name, await spec.build(rt), settings.grpc_port)
    await server.start()
    consumers = list(spec.consumers(rt))
    for consumer in consumers:
        await consumer.start()
    rt.tasks.append(
        asyncio.create_task(_watch_dependencies(rt, server, spec.name), name="health-monitor")
    )
    if spec.retention is not None:
        sweeping = run_periodically(
            spec.name,
            rt.sessions,
            spec.retention,
            settings.personal_data_ttl_days,
            settings.retention_interval_seconds,
        )
        rt.tasks.append(asyncio.create_task(sweeping, name="retention"))
    metrics_port = start_metrics_server(settings.metrics_port)
    log.info(
        "service_ready",
        grpc_port=server.port,
        metrics_port=metrics_port,
        event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
    )
    try:
        await stop.wait()
    finally:
        grace = settings.shutdown_grace_seconds
        log.info("service_stopping", drain_seconds=grace)
        # Drain: gRPC finishes its calls while consumers finish (not abandon) the jobs they hold.
        await asyncio.gather(
            server.stop(grace=min(grace, 5.0)),
            *(consumer.stop(grace=grace) for consumer in consumers),
        )
        for task in rt.tasks:
            task.cancel()
        for task in rt.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for close in reversed(rt.closers):
            with contextlib.suppress(Exception):
                await close()
        await relay.stop()
        await close_nats(nc)
        await engine.dispose()
        log.info("service_stopped")


async def _watch_dependencies(
    rt: Runtime, server: GrpcServer, service: str, interval: float = 5.0
) -> None:
    """Keeps the gRPC health status true: NOT_SERVING while the database or NATS is away."""
    serving = database = True
    pool = rt.engine.pool
    while True:
        if isinstance(pool, QueuePool):
            DB_POOL_IN_USE.labels(service).set(pool.checkedout())
            DB_POOL_CAPACITY.labels(service).set(pool.size() + pool._max_overflow)
        db_up = await ping(rt.engine)
        nats_up = rt.nc.is_connected
        DEPENDENCY_UP.labels("database").set(int(db_up))
        DEPENDENCY_UP.labels("nats").set(int(nats_up))
        if db_up != database:
            database = db_up
            await server.set_database(db_up)
        if (db_up and nats_up) != serving:
            serving = db_up and nats_up
            await server.set_serving(serving)
            log.warning("health_changed", serving=serving, database=db_up, nats=nats_up)
        await asyncio.sleep(interval)


def main(
    spec: ServiceSpec, settings_cls: type[CommonSettings], argv: Sequence[str] | None = None
) -> None:
    """`python -m infou_<name> [serve|migrate|rotate-keys|<command>]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    try:
        settings = settings_cls()
    except Exception as exc:  # invalid settings stop the process with a clear message
        print(f"infou-{spec.name}: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings.service_name or spec.name, settings.log_level, settings.log_json)
    crypto.configure(settings.data_keys.get_secret_value())
    configure_tracing(spec.name, settings.otel_exporter_otlp_endpoint, settings.trace_sample_ratio)
    run = uvloop.run if settings.event_loop == "uvloop" else asyncio.run
    if command == "migrate":
        run(migrate(spec, settings))
    elif command == "serve":
        run(_serve_until_signal(spec, settings))
    elif command == "rotate-keys":
        run(rotate_keys(spec, settings))
    elif command in spec.commands:
        run(spec.commands[command](settings))
    else:
        known = ", ".join(["serve", "migrate", "rotate-keys", *spec.commands])
        print(f"unknown command {command!r}; known: {known}", file=sys.stderr)
        raise SystemExit(2)


async def _serve_until_signal(spec: ServiceSpec, settings: CommonSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(spec, settings, stop)
