"""WebSocket /sessions/{id}/ws (PRD §3.6): a session's live progress.

The token comes in the Authorization header or as a subprotocol (`infou.v1, st_…`), never in
the URL. A refused handshake answers with the HTTP status and error body of any other call
(401, 404, 410). Then every message is `{"type", "data", "sequence"}`: first a `snapshot` of
the current state (so a late or reconnecting client misses nothing), then
`generation_progress`, `article_ready`, `generation_complete`, `conversion_complete`, `error`
and `heartbeat`, from realtime-service's Watch stream (this replica's own, so every replica
sees every event). A client that does not take a message within the send timeout is dropped
without holding up anyone else; the client may send `{"type": "ping"}` and gets a `pong`.
Each connection is recorded in realtime's websocket_connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from typing import Any

import grpc
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from infou_gateway import wslimits
from infou_gateway.auth import websocket_token
from infou_gateway.errors import error_response, grpc_error_response
from infou_gateway.identity import Client
from infou_gateway.path_params import is_plain
from infou_gateway.quotas import RATE_LIMITED
from infou_gateway.state import GatewayState
from infou_libs.errors import InvalidArgument, RateLimited
from infou_libs.logging import get_logger
from infou_protos.realtime.v1 import realtime_pb2
from infou_protos.session.v1 import session_pb2

log = get_logger(__name__)

router = APIRouter(tags=["realtime"])

GATEWAY_ID = f"{socket.gethostname()}-{os.getpid()}"
# Watch streams that end on their own (realtime restarting) are opened again this many times.
WATCH_RESUMES = 5
MAX_SESSION_ID = 64


class _Closed(Exception):
    """The connection is over; `reason` goes to websocket_connections.disconnect_reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    renewal = asyncio.create_task(_keep_slots(state, connection_id, list(slots)))
    try:
        await _serve(websocket, state, session_id, connection_id, client, subprotocol)
    finally:
        renewal.cancel()
        await state.ws_slots.release(connection_id, list(slots))


async def _keep_slots(state: GatewayState, connection_id: str, keys: list[str]) -> None:
    """Renews the connection's slots while it lives (a dead replica's slots lapse)."""
    while True:
        await asyncio.sleep(wslimits.RENEW_SECONDS)
        await state.ws_slots.renew(connection_id, keys)


async def _serve(
    websocket: WebSocket,
    state: GatewayState,
    session_id: str,
    connection_id: str,
    client: Client,
    subprotocol: str | None,
) -> None:
    clients = state.clients
    try:
        await clients.realtime.RegisterConnection(
            realtime_pb2.RegisterConnectionRequest(
                connection_id=connection_id,
                session_id=session_id,
                client_ip=client.ip,
                user_agent=websocket.headers.get("user-agent", "")[:500],
                gateway_id=GATEWAY_ID,
            ),
            timeout=clients.deadline,
        )
    except grpc.aio.AioRpcError as exc:
        await _refuse(websocket, grpc_error_response(exc))
        return
    await websocket.accept(subprotocol=subprotocol)
    log.info("websocket_opened", session_id=session_id, connection_id=connection_id)
    connection = _Connection(websocket, state, session_id, connection_id)
    reason = await connection.run()
    with contextlib.suppress(Exception):
        await clients.realtime.CloseConnection(
            realtime_pb2.CloseConnectionRequest(
                connection_id=connection_id, disconnect_reason=reason
            ),
            timeout=clients.deadline,
        )
    log.info("websocket_closed", session_id=session_id, connection_id=connection_id, reason=reason)


class _Connection:
    """One accepted WebSocket: Watch → client, client → pings, until one side ends."""

    def __init__(
        self, websocket: WebSocket, state: GatewayState, session_id: str, connection_id: str
    ) -> None:
        self.websocket = websocket
        self.state = state
        self.session_id = session_id
        self.connection_id = connection_id
        self.send_timeout = state.settings.ws_send_timeout_seconds
        self._send_lock = asyncio.Lock()
        self._touches: set[asyncio.Task[None]] = set()

    async def run(self) -> str:
        forward = asyncio.create_task(self._forward(), name=f"ws-forward-{self.connection_id}")
        listen = asyncio.create_task(self._listen(), name=f"ws-listen-{self.connection_id}")
        drain = asyncio.create_task(self._until_draining(), name=f"ws-drain-{self.connection_id}")
        done, pending = await asyncio.wait(
            {forward, listen, drain}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        reason = "closed"
        for task in done:
            exc = task.exception()
            if isinstance(exc, _Closed):
                reason = exc.reason
            elif exc is not None:
                log.warning("websocket_failed", connection_id=self.connection_id, error=str(exc))
                reason = "error"
        close_code = {"slow_client": 1008, "realtime_unavailable": 1011, "going_away": 1001}.get(
            reason, 1000
        )
        if reason not in ("client_closed",):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(code=close_code, reason=reason), 2)
        for touch in list(self._touches):
            touch.cancel()
        return reason

    async def _until_draining(self) -> None:
        # The gateway is shutting down: 1001 tells the client to reconnect (to another replica).
        await self.state.draining.wait()
        raise _Closed("going_away")

    async def _send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)
        async with self._send_lock:
            try:
                await asyncio.wait_for(self.websocket.send_text(text), self.send_timeout)
            except TimeoutError as exc:
                raise _Closed("slow_client") from exc
            except (WebSocketDisconnect, RuntimeError) as exc:
                raise _Closed("client_closed") from exc

    async def _forward(self) -> None:
        clients = self.state.clients
        resumes = 0
        while True:
            call = clients.realtime.Watch(
                realtime_pb2.WatchRequest(
                    session_id=self.session_id, connection_id=self.connection_id
                )
            )
            try:
                async for message in call:
                    resumes = 0
                    await self._send(
                        {
                            "type": message.type,
                            "data": json.loads(message.data_json or "{}"),
                            "sequence": message.sequence,
                        }
                    )
                    if message.type == "heartbeat":
                        self._touch()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise _Closed("slow_client") from exc
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Closed("session_gone") from exc
                log.warning(
                    "watch_interrupted",
                    connection_id=self.connection_id,
                    grpc_code=exc.code().name,
                    resumes=resumes,
                )
            finally:
                call.cancel()
            resumes += 1
            if resumes > WATCH_RESUMES:
                raise _Closed("realtime_unavailable")
            # A new Watch starts with a fresh snapshot: nothing is lost across the gap.
            await asyncio.sleep(min(2.0, 0.2 * 2**resumes))

    async def _listen(self) -> None:
        while True:
            try:
                raw = await self.websocket.receive_text()
            except WebSocketDisconnect as exc:
                raise _Closed("client_closed") from exc
            except RuntimeError as exc:
                raise _Closed("client_closed") from exc
            try:
                kind = json.loads(raw).get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind == "ping":
                await self._send({"type": "pong", "data": {"session_id": self.session_id}})
                self._touch()

    def _touch(self) -> None:
        """Records that the client is alive (last_ping_at), without waiting for it."""

        async def touch() -> None:
            with contextlib.suppress(Exception):
                await self.state.clients.realtime.TouchConnection(
                    realtime_pb2.TouchConnectionRequest(connection_id=self.connection_id),
                    timeout=self.state.clients.deadline,
                )

        task = asyncio.create_task(touch())
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)
