"""Idempotency keys (Stripe semantics): a create replayed with the same key returns what the
first one created, in the service that owns the resource and in the transaction that creates it.

The key row is inserted first in the creating transaction, so a concurrent request with the
same key waits on the unique index and then finds it taken (`KeyTaken`): its caller rolls back
and looks the key up again. A key lives 24 hours; an older row is taken over by a new request.
Only HMACs of the client's key and of the request are stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import InvalidArgument

KEY_TTL = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255
REUSED = "IDEMPOTENCY_KEY_REUSED"


class KeyTaken(Exception):
    """Another request with this key committed first: roll back and recall the key."""


def idempotency_table(metadata: MetaData) -> Table:
    """The `idempotency_keys` table, in the service's own schema."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("key_hash", String(64), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("resource_id", String(64), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def key_hash(secret: str, scope: str, key: str) -> str:
    """HMAC of the client's key, scoped to the client and the operation."""
    return hmac.new(secret.encode(), f"{scope}\x00{key}".encode(), hashlib.sha256).hexdigest()


def request_hash(body: dict[str, Any]) -> str:
    """sha256 of the request's canonical JSON: the same key must come with the same request."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def recall(session: AsyncSession, table: Table, key: str, request: str) -> str | None:
    """The resource an earlier request with this key created, within 24 h; None if none did.

    The same key with another request is an InvalidArgument (HTTP 422 IDEMPOTENCY_KEY_REUSED).
    """
    row = (
        await session.execute(
            select(table.c.request_hash, table.c.resource_id).where(
                table.c.key_hash == key, table.c.created_at > func.now() - KEY_TTL
            )
        )
    ).one_or_none()
    if row is None:
        return None
    if not hmac.compare_digest(row[0], request):
        raise InvalidArgument(
            "this Idempotency-Key was used with a different request",
            field="Idempotency-Key",
            code=REUSED,
        )
    return str(row[1])


async def remember(
    session: AsyncSession, table: Table, key: str, request: str, resource_id: str
) -> None:
    """Claims the key for `resource_id` in the creating transaction (call it first there)."""
    await session.execute(
        delete(table).where(table.c.key_hash == key, table.c.created_at <= func.now() - KEY_TTL)
    )
    claimed = (
        await session.execute(
            pg_insert(table)
            .values(key_hash=key, request_hash=request, resource_id=resource_id)
            .on_conflict_do_nothing(index_elements=[table.c.key_hash])
            .returning(table.c.key_hash)
        )
    ).one_or_none()
    if claimed is None:
        raise KeyTaken(key)
