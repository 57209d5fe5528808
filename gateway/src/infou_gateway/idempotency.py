"""Idempotency-Key on the creates (POST /sessions, POST /sub-topics/generate), Stripe style.

The gateway only checks the header and carries it: the service that creates the resource keeps
the key with it, in the same transaction (infou_libs.idempotency), so a replay within 24 hours
returns the same resource (for a session, a token that opens it) without creating or spending
anything, even when the first request's answer never reached the client. When the gateway gives
up waiting on a create, the client is told to retry (503 with Retry-After), with the same key.
"""

from __future__ import annotations

from typing import Annotated

import grpc
from fastapi import Header

from infou_libs.errors import Unavailable

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
# Printable ASCII without spaces at the ends: what clients use (UUIDs, ULIDs, hashes). Declared
# on the header, so the OpenAPI document states it and a bad key is a 422 naming the header.
PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"
RETRY_AFTER_SECONDS = 2

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=MAX_LENGTH,
        pattern=PATTERN,
        description="a replay within 24 h returns the first result; 1-255 printable characters",
    ),
]


def gave_up(exc: grpc.aio.AioRpcError) -> Unavailable | None:
    """For a create whose deadline passed: 503 with Retry-After (the create may have happened;
    a retry with the same Idempotency-Key returns it). None for any other failure."""
    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
        return None
    return Unavailable(
        "the request took too long; retry it (with the same Idempotency-Key to be safe)",
        retry_after=RETRY_AFTER_SECONDS,
    )
