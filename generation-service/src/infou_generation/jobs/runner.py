"""The job framework: the context every job handler shares and its durable consumer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from redis.asyncio import Redis
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation.catalog import CatalogClient
from infou_generation.engine import GenerationEngine, build_engine
from infou_generation.models import outbox
from infou_generation.settings import GenerationSettings
from infou_libs import subjects
from infou_libs.messaging import DurableConsumer, ExhaustedHandler, Handler
from infou_libs.runtime import Runtime


@dataclass
class JobContext:
    """What job handlers share in one process."""

    settings: GenerationSettings
    sessions: async_sessionmaker[AsyncSession]
    nc: NatsClient  # core NATS, for ephemeral notices on progress.session.<id>
    js: JetStreamContext
    outbox: Table
    engine: GenerationEngine
    catalog: CatalogClient

    @classmethod
    def create(cls, rt: Runtime) -> JobContext:
        """The context of a running service; its engine and channels close with the service."""
        settings = rt.settings
        assert isinstance(settings, GenerationSettings)
        # One Redis client per process: the circuit breakers every worker shares.
        redis = Redis.from_url(settings.redis_url)
        rt.closers.append(redis.aclose)
        engine = build_engine(settings, rt.sessions, redis=redis)
        catalog = CatalogClient(settings.catalog_addr, settings.grpc_deadline_seconds)
        rt.closers.append(engine.aclose)
        rt.closers.append(catalog.close)
        return cls(settings, rt.sessions, rt.nc, rt.js, outbox, engine, catalog)


JobConsumerFactory = Callable[[JobContext], DurableConsumer]


def durable_name(kind: str) -> str:
    return "gen-" + kind.replace(".", "-")


def job_consumer(
    ctx: JobContext,
    kind: str,
    handler: Handler,
    *,
    on_exhausted: ExhaustedHandler | None = None,
    concurrency: int | None = None,
) -> DurableConsumer:
    """A durable work-queue consumer `gen-<kind>` of `jobs.<kind>` (see the package doc)."""
    return DurableConsumer(
        js=ctx.js,
        stream=subjects.JOBS_STREAM,
        durable=durable_name(kind),
        subjects=[subjects.job_subject(kind)],
        handler=handler,
        on_exhausted=on_exhausted,
        concurrency=concurrency or ctx.settings.worker_concurrency,
        ack_wait=ctx.settings.jobs_ack_wait_seconds,
        backoff=tuple(ctx.settings.jobs_retry_backoff_seconds),
    )


def consumers(rt: Runtime, factories: Sequence[JobConsumerFactory]) -> list[DurableConsumer]:
    """Every job consumer of this process, sharing one context (for `ServiceSpec.consumers`)."""
    if not factories:
        return []
    ctx = JobContext.create(rt)
    return [make(ctx) for make in factories]
