"""Stored ciphertext as a whole: encrypting existing rows (migrations) and key rotation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from infou_libs.crypto import EncryptedJSON, EncryptedText, Keyring, is_encrypted, keyring


@dataclass(frozen=True)
class EncryptedColumn:
    schema: str
    table: str
    column: str
    key: tuple[str, ...]  # primary key columns, to address a row

    @property
    def qualified_table(self) -> str:
        return f'"{self.schema}"."{self.table}"'


def encrypted_columns(metadata: MetaData) -> list[EncryptedColumn]:
    """Every column of a service's models typed EncryptedText or EncryptedJSON."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText | EncryptedJSON):
                key = tuple(c.name for c in table.primary_key.columns)
                found.append(
                    EncryptedColumn(table.schema or "public", table.name, column.name, key)
                )
    return found


def _rows(conn: Connection, col: EncryptedColumn) -> Sequence[tuple[object, ...]]:
    keys = ", ".join(f'"{k}"' for k in col.key)
    rows = conn.execute(
        text(
            f'SELECT {keys}, "{col.column}" FROM {col.qualified_table} '  # noqa: S608
            f'WHERE "{col.column}" IS NOT NULL'
        )
    )
    return [tuple(row) for row in rows]


def _update(conn: Connection, col: EncryptedColumn, row: tuple[object, ...], value: str) -> None:
    where = " AND ".join(f'"{k}" = :k{i}' for i, k in enumerate(col.key))
    params: dict[str, object] = {f"k{i}": row[i] for i in range(len(col.key))}
    params["v"] = value
    conn.execute(
        text(f'UPDATE {col.qualified_table} SET "{col.column}" = :v WHERE {where}'),  # noqa: S608
        params,
    )


def encrypt_existing(conn: Connection, col: EncryptedColumn, ring: Keyring | None = None) -> int:
    """Encrypts every plain value of a (text) column in place; returns rows changed."""
    ring = ring or keyring()
    changed = 0
    for row in _rows(conn, col):
        value = str(row[-1])
        if not is_encrypted(value):
            _update(conn, col, row, ring.encrypt(value.encode()))
            changed += 1
    return changed


def decrypt_existing(conn: Connection, col: EncryptedColumn, ring: Keyring | None = None) -> int:
    """Turns every encrypted value of a column back into plain text (migration downgrades)."""
    ring = ring or keyring()
    changed = 0
    for row in _rows(conn, col):
        value = str(row[-1])
        if is_encrypted(value):
            _update(conn, col, row, ring.decrypt(value).decode())
            changed += 1
    return changed


def rewrap_existing(conn: Connection, col: EncryptedColumn, ring: Keyring | None = None) -> int:
    """Re-encrypts every value of a column not yet under the current key; returns rows changed."""
    ring = ring or keyring()
    changed = 0
    for row in _rows(conn, col):
        value = str(row[-1])
        if is_encrypted(value):
            rewrapped = ring.rewrap(value)
            if rewrapped != value:
                _update(conn, col, row, rewrapped)
                changed += 1
    return changed


async def rotate(engine: AsyncEngine, metadata: MetaData, ring: Keyring | None = None) -> int:
    """`infou rotate-keys` for one service: every encrypted column under the current key."""
    total = 0
    for col in encrypted_columns(metadata):
        # One transaction per column: a long rotation commits as it goes and can be re-run.
        async with engine.begin() as conn:
            total += await conn.run_sync(rewrap_existing, col, ring)
    return total


def migrate_to_ciphertext(col: EncryptedColumn, *, was_jsonb: bool = False) -> None:
    """Alembic upgrade step: the column becomes nullable text and its values ciphertext."""
    from alembic import op

    op.alter_column(
        col.table,
        col.column,
        schema=col.schema,
        type_=sa.Text(),
        nullable=True,
        postgresql_using=f'"{col.column}"::text' if was_jsonb else None,
    )
    encrypt_existing(op.get_bind(), col)


def migrate_to_plaintext(
    col: EncryptedColumn,
    restore: sa.types.TypeEngine[Any],
    *,
    was_jsonb: bool = False,
    not_null_default: str | None = None,
) -> None:
    """Alembic downgrade step: values back to plain text, the column back to its old type."""
    from alembic import op

    decrypt_existing(op.get_bind(), col)
    if not_null_default is not None:
        op.execute(
            sa.text(
                f'UPDATE {col.qualified_table} SET "{col.column}" = :v '  # noqa: S608
                f'WHERE "{col.column}" IS NULL'
            ).bindparams(v=not_null_default)
        )
    op.alter_column(
        col.table,
        col.column,
        schema=col.schema,
        type_=restore,
        nullable=not_null_default is None,
        postgresql_using=f'"{col.column}"::jsonb' if was_jsonb else None,
    )
