"""WebSocket /sessions/{id}/ws (PRD §3.6): a session's live progress.

The token comes in the Authorization header or as a subprotocol (`infou.v1, st_…`), never in
the URL. A refused handshake answers with the HTTP status and error body of any other call
(401, 404, 410). Then every message is `{"type", "data", "sequence"}`: first a `snapshot` of
the current state (so a late or reconnecting client misses nothing), then
`generation_progress`, `article_ready`, `generation_complete`, `conversion_complete`, `error`
and `heartbeat`, from realtime-service's Watch stream: one per session on this replica,
shared by all its watchers here (wshub), which writes each frame, serialised once, to the
sockets of the watchers that are caught up (wsdirect). A client that does not take a message
within the send timeout, or falls a whole buffer behind, is dropped (1008) without holding up
anyone else; the client may send `{"type": "ping"}` and gets a `pong`. Each connection is
recorded in realtime's websocket_connections, in batches (wsrecords).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid

import grpc
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infou_gateway import wsdirect, wslimits
from infou_gateway.auth import websocket_token
from infou_gateway.errors import error_response, grpc_error_response
from infou_gateway.identity import Client
from infou_gateway.path_params import is_plain
from infou_gateway.quotas import RATE_LIMITED
from infou_gateway.state import GatewayState
from infou_gateway.wshub import DROPPED, Ended, SessionFeed, Watcher
from infou_libs.errors import InvalidArgument, RateLimited
from infou_libs.logging import get_logger
from infou_protos.realtime.v1 import realtime_pb2
from infou_protos.session.v1 import session_pb2

log = get_logger(__name__)

router = APIRouter(tags=["realtime"])

GATEWAY_ID = f"{socket.gethostname()}-{os.getpid()}"
MAX_SESSION_ID = 64
# Where WatchHandoff leaves room, in the scope, for the route to hand it the accepted connection.
HANDOFF = "infou.ws_handoff"
CLOSE_CODES = {"slow_client": 1008, "realtime_unavailable": 1011, "going_away": 1001}


async def _refuse(websocket: WebSocket, response: JSONResponse) -> None:
    """The handshake answered with an HTTP error, or a close code 4000+status without the
    denial-response extension."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + response.status_code)


@router.websocket("/sessions/{session_id}/ws")
async def session_progress(websocket: WebSocket, session_id: str) -> None:
    state: GatewayState = websocket.app.state.gateway
    clients = state.clients
    token, subprotocol = websocket_token(websocket)
    if not is_plain(session_id, MAX_SESSION_ID):
        malformed = InvalidArgument(
            "session_id is not a session id", field="session_id", code="VALIDATION_ERROR"
        )
        await _refuse(websocket, error_response(malformed))
        return
    try:
        await clients.session.GetSession(
            session_pb2.GetSessionRequest(session_id=session_id, access_token=token),
            timeout=clients.deadline,
        )
    except grpc.aio.AioRpcError as exc:
        await _refuse(websocket, grpc_error_response(exc))
        return

    connection_id = f"ws_{uuid.uuid4().hex}"
    client: Client = websocket.state.client
    slots = {
        wslimits.token_key(token): state.settings.ws_max_per_session,
        wslimits.client_key(client.id): state.settings.ws_max_per_client,
    }
    if not await state.ws_slots.acquire(connection_id, slots):
        RATE_LIMITED.labels("concurrent_websockets").inc()
        too_many = RateLimited(
            f"동시 연결 한도(세션당 {state.settings.ws_max_per_session}개)를 초과했습니다.",
            code="TOO_MANY_CONNECTIONS",
        )
        await _refuse(websocket, error_response(too_many))
        return
    keys = list(slots)
    try:
        state.ws.records.opened(
            realtime_pb2.RegisterConnectionRequest(
                connection_id=connection_id,
                session_id=session_id,
                client_ip=client.ip,
                user_agent=websocket.headers.get("user-agent", "")[:500],
                gateway_id=GATEWAY_ID,
            )
        )
        await websocket.accept(subprotocol=subprotocol)
    except BaseException:
        state.ws.records.closed(connection_id, "client_closed")
        await state.ws_slots.release(connection_id, keys)
        raise
    log.info("websocket_opened", session_id=session_id, connection_id=connection_id)
    connection = Connection(state, session_id, connection_id, keys)
    handoff: list[Connection] | None = websocket.scope.get(HANDOFF)
    if handoff is not None:
        # The handshake is done: the middleware stack unwinds, and the connection goes on at
        # the outermost layer with nothing of it held (see WatchHandoff).
        handoff.append(connection)
        return
    await connection.run(websocket.receive, websocket.send)


class WatchHandoff:
    """The outermost ASGI layer: a WebSocket watcher, once accepted, is served here, on the raw
    ASGI receive/send, after the route and every middleware have returned (their frames, exit
    stacks, the handshake's span and request objects are freed, ~15 KB a connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        handoff: list[Connection] = []
        scope[HANDOFF] = handoff
        try:
            await self.app(scope, receive, send)
        except BaseException:
            while handoff:  # accepted, then the stack failed on its way out
                handoff.pop().abandon()
            raise
        if handoff:
            connection = handoff.pop()
            # What the route and middlewares left in the scope is no longer needed.
            for key in [k for k in scope if k not in _SCOPE_KEPT]:
                del scope[key]
            await connection.run(receive, send)


_SCOPE_KEPT = frozenset({"type", "asgi", "http_version", "scheme", "server", "client", "path"})


def install(app: FastAPI) -> None:
    """Puts WatchHandoff around the app's whole middleware stack (tracing included)."""
    build = app.build_middleware_stack

    def build_with_handoff() -> ASGIApp:
        return WatchHandoff(build())

    app.build_middleware_stack = build_with_handoff  # type: ignore[method-assign]


class Connection:
    """One accepted WebSocket watcher: the feed's frames out, pings in, until one side ends.
    Runs in the connection's own (ASGI) task, with one pending receive beside it."""

    __slots__ = ("hub", "keys", "session_id", "slots", "watcher")

    def __init__(
        self, state: GatewayState, session_id: str, connection_id: str, keys: list[str]
    ) -> None:
        self.hub = state.ws
        self.slots = state.ws_slots
        self.session_id = session_id
        self.keys = keys
        self.watcher = Watcher(connection_id)

    def abandon(self) -> None:
        """Never served: its record is closed and its slots are freed (in the background)."""
        self.hub.records.closed(self.watcher.connection_id, "server_error")
        self.hub.background(self.slots.release(self.watcher.connection_id, self.keys))

    async def run(self, receive: Receive, send: Send) -> None:
        hub, watcher = self.hub, self.watcher
        watcher.task = asyncio.current_task()
        watcher.socket = wsdirect.socket_under(send)
        try:
            feed = hub.join(self.session_id, watcher)
            try:
                reason = await self._watch(feed, receive, send)
            finally:
                hub.leave(feed, watcher)
            if reason in ("slow_client", "realtime_unavailable"):
                DROPPED.labels(reason).inc()
            if reason != "client_closed":
                close = {"type": "websocket.close", "code": CLOSE_CODES.get(reason, 1000)}
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await send(close | {"reason": reason})
            hub.records.closed(watcher.connection_id, reason)
            log.info(
                "websocket_closed",
                session_id=self.session_id,
                connection_id=watcher.connection_id,
                reason=reason,
            )
        finally:
            await self.slots.release(watcher.connection_id, self.keys)

    async def _watch(self, feed: SessionFeed, receive: Receive, send: Send) -> str:
        watcher, records = self.watcher, self.hub.records
        loop = asyncio.get_running_loop()
        receiving: asyncio.Future[Message] | None = None
        try:
            snapshot = await feed.start(watcher)
            await _send(send, watcher, loop, snapshot.send)
            receiving = asyncio.ensure_future(receive())
            receiving.add_done_callback(watcher.wake_up)
            while True:
                while watcher.cursor < feed.end:
                    if watcher.cursor < feed.first:
                        raise Ended("slow_client")  # the buffer moved on without it
                    frame = feed.frame_at(watcher.cursor)
                    watcher.cursor += 1
                    if frame.sequence and frame.sequence <= watcher.after:
                        continue  # already in its snapshot
                    await _send(send, watcher, loop, frame.send)
                    if frame.kind == "heartbeat":
                        records.touched(watcher.connection_id)
                if feed.ended is not None:
                    raise Ended(feed.ended)
                if receiving.done():
                    message = receiving.result()
                    if message["type"] == "websocket.disconnect":
                        raise Ended("client_closed")
                    if _is_ping(message):
                        await _send(send, watcher, loop, _pong(feed.session_id))
                        records.touched(watcher.connection_id)
                    receiving = asyncio.ensure_future(receive())
                    receiving.add_done_callback(watcher.wake_up)
                    continue
                watcher.wake = loop.create_future()
                try:
                    await watcher.wake
                finally:
                    watcher.wake = None
        except Ended as ended:
            return ended.reason
        except asyncio.CancelledError:
            if not watcher.slow:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return "slow_client"
        except (WebSocketDisconnect, RuntimeError, OSError):
            return "client_closed"
        finally:
            if receiving is not None and not receiving.done():
                receiving.cancel()


async def _send(
    send: Send, watcher: Watcher, loop: asyncio.AbstractEventLoop, message: Message
) -> None:
    """One frame out; the hub's sweep cancels a send that outlasts the send timeout."""
    watcher.sending_since = loop.time()
    try:
        await send(message)
    finally:
        watcher.sending_since = 0.0


def _pong(session_id: str) -> Message:
    pong = {"type": "pong", "data": {"session_id": session_id}}
    return {"type": "websocket.send", "text": json.dumps(pong, ensure_ascii=False)}


def _is_ping(message: Message) -> bool:
    raw = message.get("text")
    if raw is None:
        return False
    try:
        return bool(json.loads(raw).get("type") == "ping")
    except (ValueError, AttributeError):
        return False
