"""The gateway's WebSocket fan-out: one realtime Watch stream per session with watchers here.

A session's first watcher on this replica opens its `SessionFeed`: one gRPC Watch stream to
realtime-service, read by one task. Each message is encoded to its WebSocket text once and
appended to the feed's bounded buffer (a ring with absolute indexes); each watcher keeps only
a cursor into it. The feed's task then delivers the frame itself: to every watcher that is idle
and caught up it writes the frame's wire bytes, serialised once, straight to the socket
(wsdirect); only the others (behind, busy sending, held back by flow control, or on a server
wsdirect cannot write to) are woken to send from their cursor through the ASGI send. So an
event costs one loop over the watchers and one socket write each, not a task wake-up and a
frame build per watcher, and a watcher costs its socket, a small `Watcher` record and one
pending receive, not a stream, a queue and a task tree. The last watcher leaving closes the
stream.

A watcher starts from a snapshot: the stream's own (which is also put in the buffer, so every
watcher sees a fresh one after the stream was reopened), or, once numbered progress has moved
past it, a fresh one from session-service (fetched once for every watcher that joins
meanwhile); the buffered messages since the fetch began follow it, those the snapshot already
reflects left out. A watcher the buffer has moved past (INFOU_WS_FEED_BUFFER messages behind),
or whose send has not finished within INFOU_WS_SEND_TIMEOUT_SECONDS, is dropped as slow (1008)
and never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from infou_gateway import wsdirect
from infou_gateway.clients import ServiceClients
from infou_gateway.settings import GatewaySettings
from infou_gateway.wslimits import ConnectionSlots
from infou_gateway.wsrecords import ConnectionRecords
from infou_libs.logging import get_logger
from infou_protos.realtime.v1 import realtime_pb2
from infou_protos.session.v1 import session_pb2

log = get_logger(__name__)

FEEDS = Gauge("infou_gateway_ws_feeds", "Sessions with a Watch stream open on this gateway")
WATCHERS = Gauge("infou_gateway_ws_watchers", "WebSockets watching a session on this gateway")
DROPPED = Counter("infou_gateway_ws_dropped_total", "WebSockets closed by the gateway", ["reason"])
FRAMES = Counter(
    "infou_gateway_ws_frames_total",
    "Feed frames handed to watchers: written to the socket by the feed, or woken to send",
    ["path"],
)
DIRECT, WOKEN = FRAMES.labels("direct"), FRAMES.labels("woken")
FANOUT = Histogram(
    "infou_gateway_ws_fanout_seconds",
    "From a feed message's arrival to its frame written or handed to every watcher",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# Watch streams that end on their own (realtime restarting) are opened again this many times.
WATCH_RESUMES = 5
# Watchers a feed delivers to between two turns of the event loop (other requests go on).
FANOUT_SLICE = 1000


class Ended(Exception):
    """The watcher's connection is over; `reason` goes to disconnect_reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Frame:
    """One message, encoded once: `send` is the ASGI message every watcher sends as is, `wire`
    the WebSocket frame the feed writes to sockets directly."""

    kind: str
    sequence: int
    send: dict[str, Any]
    wire: bytes


def encode(kind: str, data_json: str, sequence: int) -> Frame:
    text = json.dumps(
        {"type": kind, "data": json.loads(data_json or "{}"), "sequence": sequence},
        ensure_ascii=False,
    )
    return Frame(kind, sequence, {"type": "websocket.send", "text": text}, wsdirect.wire_text(text))


class Watcher:
    """What one WebSocket needs of its feed: where it is in the buffer, and how to wake it."""

    __slots__ = (
        "after",
        "connection_id",
        "cursor",
        "sending_since",
        "slow",
        "socket",
        "task",
        "wake",
    )

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.cursor = 0  # the next buffer index to send
        self.after = 0  # numbered messages up to this sequence are in its snapshot
        self.wake: asyncio.Future[None] | None = None
        self.sending_since = 0.0  # loop time a send began; 0: not sending
        self.slow = False
        self.task = asyncio.current_task()
        self.socket: Any | None = None  # set when the feed may write frames to it (wsdirect)

    def wake_up(self, _: object = None) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def take(self, index: int, frame: Frame) -> bool:
        """Frame `index` delivered by the feed, if this watcher is parked (waiting, not sending)
        with every earlier frame sent; False: it has to be woken to send it itself."""
        if self.wake is None or self.cursor != index or self.socket is None:
            return False
        in_snapshot = frame.sequence and frame.sequence <= self.after
        if not in_snapshot and not wsdirect.write(self.socket, frame.wire):
            return False
        self.cursor = index + 1
        return True


class SessionFeed:
    def __init__(self, hub: WatcherHub, session_id: str) -> None:
        self.hub = hub
        self.session_id = session_id
        self.frames: deque[Frame] = deque()
        self.first = 0  # buffer index of frames[0]
        self.end = 0  # buffer index the next frame gets
        self.snapshot: Frame | None = None
        self.snapshot_index = 0  # frames from here on may be newer than the snapshot
        self.last_sequence = 0  # the highest numbered sequence buffered
        self.ended: str | None = None
        self.watchers: set[Watcher] = set()
        self._first_snapshot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._refresh: asyncio.Task[tuple[Frame, int]] | None = None
        self._task = asyncio.create_task(self._follow(), name=f"ws-feed-{session_id}")

    def frame_at(self, index: int) -> Frame:
        return self.frames[index - self.first]

    async def start(self, watcher: Watcher) -> Frame:
        """The snapshot the watcher sends first; sets where in the buffer it goes on from."""
        if self.snapshot is None and self.ended is None:
            await asyncio.shield(self._first_snapshot)
        if self.ended is not None:
            raise Ended(self.ended)
        assert self.snapshot is not None
        if self.snapshot.sequence >= self.last_sequence:
            # Current: nothing numbered since it. Older notices are not replayed.
            watcher.cursor, watcher.after = self.end, self.snapshot.sequence
            return self.snapshot
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._fetch_snapshot())
        refresh = self._refresh
        try:
            snapshot, since = await asyncio.shield(refresh)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise Ended("session_gone") from exc
            raise Ended("realtime_unavailable") from exc
        finally:
            if self._refresh is refresh and refresh.done():
                self._refresh = None
        if since < self.first:
            raise Ended("slow_client")  # the buffer moved past it while it was fetched
        watcher.cursor, watcher.after = since, snapshot.sequence
        if snapshot.sequence >= self.snapshot.sequence:
            self.snapshot, self.snapshot_index = snapshot, since
        return snapshot

    async def _fetch_snapshot(self) -> tuple[Frame, int]:
        since = self.end
        clients = self.hub.clients
        reply = await clients.session.GetProgressSnapshot(
            session_pb2.GetProgressSnapshotRequest(session_id=self.session_id),
            timeout=clients.deadline,
        )
        return encode("snapshot", reply.snapshot_json, reply.sequence), since

    def _append(self, frame: Frame) -> None:
        self.frames.append(frame)
        if frame.kind == "snapshot":
            self.snapshot, self.snapshot_index = frame, self.end
            if not self._first_snapshot.done():
                self._first_snapshot.set_result(None)
        self.end += 1
        if frame.sequence > self.last_sequence:
            self.last_sequence = frame.sequence
        if len(self.frames) > self.hub.buffer:
            self.frames.popleft()
            self.first += 1

    async def _deliver(self, index: int, arrived: float) -> None:
        """Frame `index` to every watcher: written by this task where the watcher is parked and
        caught up, else the watcher is woken to send it. Yields to the loop every FANOUT_SLICE
        watchers; a watcher that moved meanwhile is simply woken (it sends from its cursor)."""
        frame = self.frame_at(index)
        touched = frame.kind == "heartbeat"
        records = self.hub.records
        direct = woken = 0
        watchers = list(self.watchers)
        for start in range(0, len(watchers), FANOUT_SLICE):
            if start:
                await asyncio.sleep(0)
            for watcher in watchers[start : start + FANOUT_SLICE]:
                if watcher.take(index, frame):
                    direct += 1
                    if touched:
                        records.touched(watcher.connection_id)
                else:
                    woken += 1
                    watcher.wake_up()
        DIRECT.inc(direct)
        WOKEN.inc(woken)
        FANOUT.observe(asyncio.get_running_loop().time() - arrived)

    def _wake_all(self) -> None:
        for watcher in self.watchers:
            watcher.wake_up()

    def finish(self, reason: str) -> None:
        """Every watcher of this feed ends with `reason` (and the stream stops)."""
        if self.ended is None:
            self.ended = reason
        if not self._first_snapshot.done():
            self._first_snapshot.set_result(None)
        self._wake_all()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self._refresh is not None:
            self._refresh.cancel()

    async def _follow(self) -> None:
        realtime = self.hub.clients.realtime
        loop = asyncio.get_running_loop()
        # One stream of this gateway, not a browser: realtime knows it by this id.
        stream_id = f"feed_{uuid.uuid4().hex}"
        resumes = 0
        while self.ended is None:
            call = realtime.Watch(
                realtime_pb2.WatchRequest(session_id=self.session_id, connection_id=stream_id)
            )
            try:
                async for message in call:
                    resumes = 0
                    arrived = loop.time()
                    self._append(encode(message.type, message.data_json, message.sequence))
                    await self._deliver(self.end - 1, arrived)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    self.finish("session_gone")
                    return
                # RESOURCE_EXHAUSTED: this gateway fell behind; the next stream's snapshot
                # brings every watcher up to date.
                log.warning(
                    "watch_interrupted",
                    session_id=self.session_id,
                    grpc_code=exc.code().name,
                    resumes=resumes,
                )
            finally:
                call.cancel()
            resumes += 1
            if resumes > WATCH_RESUMES:
                self.finish("realtime_unavailable")
                return
            await asyncio.sleep(min(2.0, 0.2 * 2**resumes))


class WatcherHub:
    """This gateway's feeds, its connection records, and the checks that run for all of them."""

    def __init__(
        self,
        settings: GatewaySettings,
        clients: ServiceClients,
        slots: ConnectionSlots,
        draining: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.slots = slots
        self.buffer = settings.ws_feed_buffer
        self.send_timeout = settings.ws_send_timeout_seconds
        self.records = ConnectionRecords(
            clients.realtime, settings.ws_record_flush_seconds, clients.deadline
        )
        self._draining = draining
        self.feeds: dict[str, SessionFeed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.records.start()
        self._tasks = [
            asyncio.create_task(self._sweep_slow(), name="ws-slow-sweep"),
            asyncio.create_task(self._until_draining(), name="ws-drain"),
            asyncio.create_task(self.slots.keep_renewed(), name="ws-slot-renewal"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for feed in list(self.feeds.values()):
            feed.finish("going_away")
            await feed.close()
        self.feeds.clear()
        await self.records.stop()

    def join(self, session_id: str, watcher: Watcher) -> SessionFeed:
        feed = self.feeds.get(session_id)
        if feed is None:
            feed = self.feeds[session_id] = SessionFeed(self, session_id)
            FEEDS.inc()
        if self._draining.is_set():
            feed.finish("going_away")
        feed.watchers.add(watcher)
        WATCHERS.inc()
        return feed

    def leave(self, feed: SessionFeed, watcher: Watcher) -> None:
        feed.watchers.discard(watcher)
        WATCHERS.dec()
        if not feed.watchers and self.feeds.get(feed.session_id) is feed:
            del self.feeds[feed.session_id]
            FEEDS.dec()
            self.background(feed.close())

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` in a task the hub holds until it is done."""
        task = asyncio.create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _until_draining(self) -> None:
        # SIGTERM: 1001 tells every watcher to reconnect (to another replica).
        await self._draining.wait()
        for feed in list(self.feeds.values()):
            feed.finish("going_away")

    async def _sweep_slow(self) -> None:
        """Cancels the sends that took longer than the send timeout (one timer for all)."""
        loop = asyncio.get_running_loop()
        interval = min(1.0, self.send_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            late = loop.time() - self.send_timeout
            for feed in list(self.feeds.values()):
                for watcher in list(feed.watchers):
                    since = watcher.sending_since
                    if since and since < late and not watcher.slow and watcher.task is not None:
                        watcher.slow = True
                        watcher.task.cancel()
