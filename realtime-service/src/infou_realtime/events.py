"""What realtime-service consumes (it publishes nothing): the progress of every session, from
core NATS (`progress.session.*`), fanned out to that session's Watch streams.

Every realtime replica subscribes once to all of `progress.session.*` (no queue group), so each
one can serve any watcher, and replicas scale out side by side. A gateway replica holds one Watch
stream per session it has WebSocket watchers for and fans it out itself, so a stream here is a
(gateway, session) pair, not a browser: a watcher sees every event wherever it connected and
whichever worker caused it. Delivery to a watcher never waits: a
watcher whose bounded queue is full is dropped (told so once) instead of stalling the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from infou_libs import subjects
from infou_libs.consume import decode
from infou_libs.logging import get_logger
from infou_libs.messaging import PermanentError
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

WATCHERS = Gauge("infou_realtime_watchers", "Watch streams open on this replica")
DELIVERED = Counter("infou_realtime_messages_total", "Progress messages put on watch streams")
DROPPED = Counter("infou_realtime_watchers_dropped_total", "Watchers dropped for falling behind")


@dataclass(eq=False)
class Watcher:
    """One Watch stream's queue of progress messages."""

    session_id: str
    connection_id: str
    queue: asyncio.Queue[events_pb2.SessionProgress]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class ProgressHub:
    def __init__(self, nc: NatsClient, queue_size: int) -> None:
        self._nc = nc
        self._queue_size = queue_size
        self._watchers: dict[str, set[Watcher]] = defaultdict(set)
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.PROGRESS_WILDCARD, cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def watch(self, session_id: str, connection_id: str) -> Watcher:
        watcher = Watcher(session_id, connection_id, asyncio.Queue(self._queue_size))
        self._watchers[session_id].add(watcher)
        WATCHERS.inc()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.session_id)
        if watchers is not None and watcher in watchers:
            watchers.discard(watcher)
            WATCHERS.dec()
            if not watchers:
                del self._watchers[watcher.session_id]

    def watching(self, session_id: str | None = None) -> int:
        """Watch streams open on this replica: for one session, or all of them."""
        if session_id is None:
            return sum(len(watchers) for watchers in self._watchers.values())
        return len(self._watchers.get(session_id, ()))

    async def _on_message(self, msg: Msg) -> None:
        # Core NATS, ephemeral: nothing to claim or retry, so the consume path is only its decode.
        try:
            progress = decode(msg, events_pb2.SessionProgress)
        except PermanentError:
            log.warning("progress_undecodable", subject=msg.subject)
            return
        session_id = progress.session_id or msg.subject.rsplit(".", 1)[-1]
        self.deliver(session_id, progress)

    def deliver(self, session_id: str, progress: events_pb2.SessionProgress) -> None:
        for watcher in list(self._watchers.get(session_id, ())):
            if watcher.dropped.is_set():
                continue
            try:
                watcher.queue.put_nowait(progress)
                DELIVERED.inc()
            except asyncio.QueueFull:
                watcher.dropped.set()
                DROPPED.inc()
                log.warning(
                    "watcher_dropped",
                    session_id=session_id,
                    connection_id=watcher.connection_id,
                    reason="slow_consumer",
                )
