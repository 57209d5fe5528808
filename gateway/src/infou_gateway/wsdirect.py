"""Shared frames written straight to a WebSocket's socket, skipping the ASGI send.

A feed's event goes to every watcher of a session: through the ASGI send that is, per watcher,
a task woken, a coroutine through uvicorn's send, the text encoded, a websockets `Frame` built and
serialised, then one `transport.write`. A server frame is the same bytes for every connection
(unmasked, and with no extension negotiated), so the feed serialises it once (`wire`) and writes
it to each socket itself, from the feed's own task, when the connection is uvicorn's
websockets-sansio protocol with no extension, open, and not held back by flow control. Anything
else (another protocol server, permessage-deflate, a paused or closing transport) returns None
or False here and goes through the ASGI send as before, where the send timeout still applies.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode


def wire_text(text: str) -> bytes:
    """A server's text frame (unmasked, no extension), as it goes on the wire."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def socket_under(send: Send) -> Any | None:
    """The connection behind an ASGI send when frames can be written to it directly, or None."""
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    if protocol.conn.extensions:  # e.g. permessage-deflate: each frame is compressed per socket
        return None
    return protocol


def write(socket: Any, wire: bytes) -> bool:
    """Writes one frame unless the connection is closing or held back (then False)."""
    protocol: WebSocketsSansIOProtocol = socket
    # uvicorn sets close_sent or closes the transport whenever the websockets protocol leaves
    # OPEN (its close, the peer's, a parser error, a keepalive timeout): no state check here.
    if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
        return False
    transport = protocol.transport
    if transport.is_closing():
        return False
    transport.write(wire)
    return True
