"""Every service's migrations go up, down to nothing, and up again, each in its own schema."""

import importlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infou_libs.db import asyncpg_url
from infou_libs.migrations import downgrade, upgrade

SERVICES = ["catalog", "session", "generation", "feedback", "realtime"]


async def _tables(url: str, schema: str) -> set[str]:
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_downgrade_upgrade(service: str, fresh_database_url: str) -> None:
    spec = importlib.import_module(f"infou_{service}.main").SPEC
    await _run(upgrade, spec, fresh_database_url)
    tables = await _tables(fresh_database_url, spec.schema)
    # The version table lives in the service's own schema, beside its tables.
    assert {"alembic_version", "outbox", "processed_events"} <= tables
    assert await _tables(fresh_database_url, "public") == set()

    await _run(downgrade, spec, fresh_database_url)
    assert await _tables(fresh_database_url, spec.schema) == {"alembic_version"}

    await _run(upgrade, spec, fresh_database_url)
    assert await _tables(fresh_database_url, spec.schema) == tables


async def _run(step, spec, url: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    await asyncio.to_thread(step, spec.migrations_dir, url, spec.schema)


async def test_models_match_migrations(fresh_database_url: str) -> None:
    """No model change is left without its migration (autogenerate finds nothing to do)."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    for service in SERVICES:
        module = importlib.import_module(f"infou_{service}.main")
        spec = module.SPEC
        await asyncio.to_thread(upgrade, spec.migrations_dir, fresh_database_url, spec.schema)
        metadata = importlib.import_module(f"infou_{service}.models").Base.metadata
        engine = create_async_engine(asyncpg_url(fresh_database_url))
        try:
            async with engine.connect() as conn:

                def diff(sync_conn, schema=spec.schema, md=metadata):  # type: ignore[no-untyped-def]
                    ctx = MigrationContext.configure(
                        sync_conn,
                        opts={
                            "include_schemas": True,
                            "include_name": lambda name, type_, _p, s=schema: (
                                name == s if type_ == "schema" else name != "alembic_version"
                            ),
                            "compare_type": True,
                        },
                    )
                    return compare_metadata(ctx, md)

                changes = await conn.run_sync(diff)
        finally:
            await engine.dispose()
        assert changes == [], f"{service}: models differ from migrations: {changes}"
