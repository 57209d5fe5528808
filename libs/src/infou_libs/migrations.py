"""Alembic per service: its own schema, its own version table inside that schema."""

from __future__ import annotations

import asyncio
import importlib.resources
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from infou_libs.db import asyncpg_url

# One advisory lock id for every migration run: two replicas starting at once take turns.
_MIGRATION_LOCK = 72_114_001


def package_migrations(package: str) -> Path:
    """The Alembic folder shipped inside a service's package (`<package>/migrations`).

    Found through the installed package, so it works the same from a source checkout, an
    editable install and the image's `--no-editable` install.
    """
    folder = importlib.resources.files(package) / "migrations"
    path = Path(str(folder))
    if not (path / "env.py").is_file():
        raise RuntimeError(f"{package} ships no migrations folder at {path}")
    return path


def alembic_config(migrations_dir: Path, database_url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    cfg.set_main_option("version_locations", str(migrations_dir / "versions"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(migrations_dir: Path, database_url: str, schema: str, revision: str = "head") -> None:
    """Runs `alembic upgrade` for one service (blocking; call from a thread in async code)."""
    command.upgrade(alembic_config(migrations_dir, database_url, schema), revision)


def downgrade(migrations_dir: Path, database_url: str, schema: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, database_url, schema), revision)


async def upgrade_async(migrations_dir: Path, database_url: str, schema: str) -> None:
    await asyncio.to_thread(upgrade, migrations_dir, database_url, schema)


def revision(migrations_dir: Path, database_url: str, schema: str, message: str) -> None:
    """Autogenerates a revision by comparing the models with an up-to-date database."""
    cfg = alembic_config(migrations_dir, database_url, schema)
    command.upgrade(cfg, "head")
    command.revision(cfg, message=message, autogenerate=True)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode, asyncpg)."""
    cfg = context.config
    url = cfg.attributes.get("database_url") or cfg.get_main_option("sqlalchemy.url")
    schema = cfg.attributes.get("schema") or target_metadata.schema
    if not url or not schema:
        raise RuntimeError("migrations need a database URL and a schema")
    asyncio.run(_run_async(str(url), str(schema), target_metadata))


async def _run_async(url: str, schema: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(asyncpg_url(url), poolclass=pool.NullPool, hide_parameters=True)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.commit()
                await conn.run_sync(_do_run, schema, target_metadata)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                await conn.commit()
    finally:
        await engine.dispose()


def _do_run(connection: Connection, schema: str, target_metadata: MetaData) -> None:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "schema" or name == schema

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
