"""catalog-service process: `python -m infou_catalog [serve|migrate|seed]`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from infou_catalog.events import run_announcer, statistics_consumers
from infou_catalog.grpc_api import CatalogServicer
from infou_catalog.models import SCHEMA, outbox
from infou_catalog.seed import SEED_DIR, apply_seed, load_seed
from infou_catalog.settings import CatalogSettings
from infou_libs.db import create_engine, session_factory, unit_of_work
from infou_libs.grpc_server import Registration
from infou_libs.migrations import package_migrations
from infou_libs.runtime import Runtime, ServiceSpec, main, migrate
from infou_libs.settings import CommonSettings
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc

MIGRATIONS = package_migrations("infou_catalog")


def _announce_seconds(settings: CommonSettings) -> float:
    return settings.catalog_stats_announce_seconds if isinstance(settings, CatalogSettings) else 0


def _batch_seconds(settings: CommonSettings) -> float:
    if isinstance(settings, CatalogSettings):
        return settings.catalog_stats_batch_seconds
    return float(CatalogSettings.model_fields["catalog_stats_batch_seconds"].default)


def _seed_dir(settings: CommonSettings) -> Path:
    seed_dir = settings.catalog_seed_dir if isinstance(settings, CatalogSettings) else None
    return seed_dir or SEED_DIR


async def build(rt: Runtime) -> Sequence[Registration]:
    # `serve` loads the seed files too (idempotent, one replica at a time): a new release's
    # content is live as soon as it runs, without a separate step.
    seed = load_seed(_seed_dir(rt.settings))
    async with unit_of_work(rt.sessions) as session:
        await apply_seed(session, seed)
    window = _announce_seconds(rt.settings)
    if window > 0:
        announcing = run_announcer(rt.sessions, window)
        rt.tasks.append(asyncio.create_task(announcing, name="catalog-stats-announcer"))
    return [
        (
            catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
            CatalogServicer(rt.sessions),
            catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
        )
    ]


async def seed_command(settings: CommonSettings) -> None:
    """Migrates, then loads the seed files (idempotent)."""
    await migrate(SPEC, settings)
    seed = load_seed(_seed_dir(settings))
    engine = create_engine(settings.database_url, SCHEMA, pool_size=1)
    try:
        async with unit_of_work(session_factory(engine)) as session:
            await apply_seed(session, seed)
    finally:
        await engine.dispose()


SPEC = ServiceSpec(
    name="catalog",
    schema=SCHEMA,
    migrations_dir=MIGRATIONS,
    outbox=outbox,
    build=build,
    consumers=lambda rt: statistics_consumers(
        rt.js, rt.sessions, _announce_seconds(rt.settings), _batch_seconds(rt.settings)
    ),
    commands={"seed": seed_command},
)


def run() -> None:
    main(SPEC, CatalogSettings)
