"""realtime use cases: the connection registry and the Watch stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import InvalidArgument, NotFound, RateLimited
from infou_libs.grpc_client import domain_error_from
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_realtime import repository
from infou_realtime.events import ProgressHub

MAX_ID = 100
MAX_USER_AGENT = 500
MAX_REASON = 50
# Records in one RecordConnections call (a gateway sends at most this many at once).
MAX_BATCH = 5000


async def connection_stats(session: AsyncSession) -> tuple[int, int]:
    """(active, total) WebSocket connections ever recorded."""
    return await repository.connection_counts(session)


def _check_ids(connection_id: str, session_id: str | None = None) -> None:
    if not connection_id or len(connection_id) > MAX_ID:
        raise InvalidArgument(
            "connection_id is required (at most 100 characters)", field="connection_id"
        )
    if session_id is not None and (not session_id or len(session_id) > 50):
        raise InvalidArgument("session_id is required (at most 50 characters)", field="session_id")


async def register_connection(
    session: AsyncSession,
    connection_id: str,
    session_id: str,
    client_ip: str,
    user_agent: str,
    gateway_id: str,
) -> None:
    _check_ids(connection_id, session_id)
    await repository.register(
        session,
        connection_id,
        session_id,
        client_ip[:64] or None,
        user_agent[:MAX_USER_AGENT] or None,
        gateway_id[:100] or None,
    )


async def close_connection(session: AsyncSession, connection_id: str, reason: str) -> None:
    _check_ids(connection_id)
    await repository.close(session, connection_id, (reason or "closed")[:MAX_REASON])


async def touch_connection(session: AsyncSession, connection_id: str) -> None:
    _check_ids(connection_id)
    await repository.touch(session, connection_id)


@dataclass(frozen=True)
class Opened:
    connection_id: str
    session_id: str
    client_ip: str
    user_agent: str
    gateway_id: str


async def record_connections(
    session: AsyncSession,
    opened: list[Opened],
    touched: list[str],
    closed: list[tuple[str, str]],
) -> None:
    """A gateway's batch of connection records: inserts, then touches, then closes."""
    for one in opened:
        _check_ids(one.connection_id, one.session_id)
    for connection_id in [*touched, *(c for c, _ in closed)]:
        _check_ids(connection_id)
    if len(opened) + len(touched) + len(closed) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} records in one batch", field="opened")
    await repository.register_many(
        session,
        [
            {
                "connection_id": one.connection_id,
                "session_id": one.session_id,
                "client_ip": one.client_ip[:64] or None,
                "user_agent": one.user_agent[:MAX_USER_AGENT] or None,
                "gateway_id": one.gateway_id[:100] or None,
            }
            for one in opened
        ],
    )
    await repository.touch_many(session, touched)
    reasons: dict[str, list[str]] = {}
    for connection_id, reason in closed:
        reasons.setdefault((reason or "closed")[:MAX_REASON], []).append(connection_id)
    await repository.close_many(session, reasons)


@dataclass(frozen=True)
class Outgoing:
    type: str
    data_json: str
    sequence: int


async def watch(
    hub: ProgressHub,
    sessions: session_pb2_grpc.SessionServiceAsyncStub,
    session_id: str,
    connection_id: str,
    *,
    heartbeat_seconds: float,
    deadline: float,
) -> AsyncIterator[Outgoing]:
    """The snapshot, then every later progress message of the session, with heartbeats.

    The watcher is registered before the snapshot is read, so nothing published in between is
    lost; what the snapshot already reflects (sequence ≤ its own) is skipped. Notices outside
    the numbered progress (sequence 0, e.g. rate-limit waits) always pass.
    """
    _check_ids(connection_id, session_id)
    watcher = hub.watch(session_id, connection_id)
    try:
        try:
            snapshot = await sessions.GetProgressSnapshot(
                session_pb2.GetProgressSnapshotRequest(session_id=session_id), timeout=deadline
            )
        except grpc.aio.AioRpcError as exc:
            error = domain_error_from(exc)
            if isinstance(error, NotFound):
                raise NotFound("no session with this id", field="session_id") from exc
            raise error from exc
        yield Outgoing("snapshot", snapshot.snapshot_json, snapshot.sequence)
        last_progress = snapshot.sequence
        while True:
            # A dropped watcher's queue is full, so this is seen at once.
            if watcher.dropped.is_set():
                raise RateLimited(
                    "this watcher fell too far behind and was dropped; reconnect",
                    code="SLOW_CONSUMER",
                )
            try:
                message = await asyncio.wait_for(watcher.queue.get(), heartbeat_seconds)
            except TimeoutError:
                yield Outgoing("heartbeat", json.dumps({"session_id": session_id}), 0)
                continue
            if message.sequence and message.sequence <= snapshot.sequence:
                continue  # already in the snapshot
            if message.type == "generation_progress":
                # Counts only grow: a late, older progress message would show them shrink.
                if message.sequence <= last_progress:
                    continue
                last_progress = message.sequence
            yield Outgoing(message.type, message.data_json, message.sequence)
    finally:
        hub.unwatch(watcher)
