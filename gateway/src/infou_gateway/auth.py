"""Session access tokens on the way in: `Authorization: Bearer st_…`, or for a WebSocket the
subprotocols `infou.v1, st_…` (browsers cannot set headers on a WebSocket), never the URL.

The gateway only carries the token; session-service checks it (401 without a valid one, 404
for another session's), so there is one place that decides.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

WS_SUBPROTOCOL = "infou.v1"
TOKEN_PREFIX = "st_"  # noqa: S105 - a prefix, not a secret
MAX_HEADER = 300


def token_from_header(authorization: str | None) -> str:
    """The token of a `Bearer` Authorization header; empty when there is none."""
    if not authorization or len(authorization) > MAX_HEADER:
        return ""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()


async def session_token(request: Request) -> str:  # async: no thread-pool hop
    return token_from_header(request.headers.get("authorization"))


SessionToken = Annotated[str, Depends(session_token)]


def websocket_token(websocket: WebSocket) -> tuple[str, str | None]:
    """(token, subprotocol to accept): from the Authorization header or the subprotocols."""
    offered = [
        p.strip()
        for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
        if p.strip()
    ]
    accept = WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None
    header = token_from_header(websocket.headers.get("authorization"))
    if header:
        return header, accept
    for protocol in offered:
        if protocol.startswith(TOKEN_PREFIX) and len(protocol) <= MAX_HEADER:
            return protocol, accept
    return "", accept
