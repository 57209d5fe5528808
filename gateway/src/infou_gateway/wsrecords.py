"""The WebSocket connection registry (realtime's websocket_connections, PRD §4.4), written in
batches: opens, heartbeats that reached a client, and closes are collected in memory and sent
to realtime-service in one RecordConnections call every INFOU_WS_RECORD_FLUSH_SECONDS, instead
of an RPC and a row write per connection per event. A failed batch is kept for the next flush
(bounded; beyond it records are dropped, logged and counted): the registry is a record, never
a reason to refuse or close a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from prometheus_client import Counter

from infou_libs.logging import get_logger
from infou_protos.realtime.v1 import realtime_pb2, realtime_pb2_grpc

log = get_logger(__name__)

RECORDS_FAILED = Counter(
    "infou_gateway_ws_records_failed_total", "WebSocket connection record batches that failed"
)
RECORDS_DROPPED = Counter(
    "infou_gateway_ws_records_dropped_total", "WebSocket connection records given up on"
)

# Records in one call (realtime-service takes up to 5,000).
BATCH = 2000
# Records held while realtime-service is unreachable; beyond this the oldest are dropped.
MAX_PENDING = 100_000


class ConnectionRecords:
    def __init__(
        self,
        realtime: realtime_pb2_grpc.RealtimeServiceAsyncStub,
        flush_seconds: float,
        deadline: float,
    ) -> None:
        self._realtime = realtime
        self._flush_seconds = flush_seconds
        self._deadline = deadline
        self._opened: list[realtime_pb2.RegisterConnectionRequest] = []
        self._touched: set[str] = set()
        self._closed: list[realtime_pb2.CloseConnectionRequest] = []
        self._task: asyncio.Task[None] | None = None

    def opened(self, record: realtime_pb2.RegisterConnectionRequest) -> None:
        self._opened.append(record)

    def touched(self, connection_id: str) -> None:
        self._touched.add(connection_id)

    def closed(self, connection_id: str, reason: str) -> None:
        self._closed.append(
            realtime_pb2.CloseConnectionRequest(
                connection_id=connection_id, disconnect_reason=reason
            )
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-connection-records")

    async def stop(self) -> None:
        """Stops the loop and sends what is left (the closes of a draining gateway)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        while self._opened or self._touched or self._closed:
            opened, self._opened = self._opened[:BATCH], self._opened[BATCH:]
            # A close or touch never goes ahead of its connection's insert.
            room = 0 if self._opened else BATCH - len(opened)
            touched = [self._touched.pop() for _ in range(min(room, len(self._touched)))]
            room -= len(touched)
            closed, self._closed = self._closed[:room], self._closed[room:]
            try:
                await self._realtime.RecordConnections(
                    realtime_pb2.RecordConnectionsRequest(
                        opened=opened, touched=touched, closed=closed
                    ),
                    timeout=self._deadline,
                )
            except grpc.aio.AioRpcError as exc:
                RECORDS_FAILED.inc()
                log.warning("ws_records_failed", grpc_code=exc.code().name, records=len(opened))
                # Back in front, in order, for the next flush.
                self._opened[:0] = opened
                self._touched.update(touched)
                self._closed[:0] = closed
                self._bound()
                return

    def _bound(self) -> None:
        excess = len(self._opened) + len(self._closed) - MAX_PENDING
        if excess > 0:
            RECORDS_DROPPED.inc(excess)
            log.error("ws_records_dropped", records=excess)
            dropped_opened = min(excess, len(self._opened))
            del self._opened[:dropped_opened]
            del self._closed[: excess - dropped_opened]
