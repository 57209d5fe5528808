"""NATS and JetStream: connection, streams, publishing with ids, durable pull consumers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from opentelemetry import trace

from infou_libs.logging import get_logger
from infou_libs.metrics import EVENTS_CONSUMED
from infou_libs.subjects import EVENTS_STREAM as EVENTS_STREAM  # re-exported
from infou_libs.subjects import EVENTS_WILDCARD, JOBS_WILDCARD
from infou_libs.subjects import JOBS_STREAM as JOBS_STREAM  # re-exported
from infou_libs.telemetry import extract_context, inject_headers, tracer

log = get_logger(__name__)

EVENT_ID_HEADER = "Infou-Event-Id"
MSG_ID_HEADER = "Nats-Msg-Id"
# A retry happens after these many seconds; len() + 1 deliveries at most (3 retries).
RETRY_BACKOFF_SECONDS: tuple[float, ...] = (1.0, 4.0, 16.0)

STREAMS: tuple[StreamConfig, ...] = (
    StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENTS_WILDCARD],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600,
        duplicate_window=120,
        discard=DiscardPolicy.OLD,
    ),
    StreamConfig(
        name=JOBS_STREAM,
        subjects=[JOBS_WILDCARD],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120,
    ),
)


async def connect(url: str, name: str) -> NatsClient:
    """Connects with endless reconnects; every state change is logged."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


async def close(nc: NatsClient, timeout: float = 5.0) -> None:
    """Drains the connection (in-flight messages finish), closing it hard after `timeout`."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        with contextlib.suppress(Exception):
            await nc.close()


async def ensure_streams(js: JetStreamContext) -> None:
    """Declares the EVENTS and JOBS streams (idempotent; updates a changed config)."""
    for config in STREAMS:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


def new_event_id() -> str:
    return uuid.uuid4().hex


async def publish(
    js: JetStreamContext,
    subject: str,
    payload: Message | bytes,
    *,
    event_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Publishes to JetStream; the event id doubles as Nats-Msg-Id for de-duplication."""
    event_id = event_id or new_event_id()
    data = payload if isinstance(payload, bytes) else payload.SerializeToString()
    await js.publish(subject, data, headers=_event_headers(event_id, headers))


@dataclass(frozen=True)
class Outgoing:
    """One event of a batch: `publish`'s arguments."""

    subject: str
    payload: bytes
    event_id: str
    headers: dict[str, str] | None = None


async def publish_batch(
    js: JetStreamContext, messages: Sequence[Outgoing], *, timeout: float = 5.0
) -> None:
    """Publishes in order, as `publish` does, but awaits JetStream's acks together.

    The messages leave in one write, in the given order (one connection keeps it), instead of
    one round trip each. Raises when any is not acked within `timeout`; those acked stay
    stored, and publishing them again under the same event ids is deduplicated.
    """
    acks: list[asyncio.Future[Any]] = []
    try:
        for m in messages:
            headers = _event_headers(m.event_id, m.headers)
            acks.append(await js.publish_async(m.subject, m.payload, headers=headers))
        await asyncio.wait_for(asyncio.gather(*acks), timeout)
    finally:
        for ack in acks:
            ack.cancel()  # no-op once done; else frees its slot in the client's pending set


def _event_headers(event_id: str, headers: dict[str, str] | None) -> dict[str, str]:
    all_headers = inject_headers(headers)
    all_headers[EVENT_ID_HEADER] = event_id
    all_headers[MSG_ID_HEADER] = event_id
    return all_headers


def event_id_of(msg: Msg) -> str:
    headers = msg.headers or {}
    return headers.get(EVENT_ID_HEADER) or headers.get(MSG_ID_HEADER) or ""


class PermanentError(Exception):
    """A message that can never succeed: terminated at once, not retried."""


Handler = Callable[[Msg], Awaitable[None]]
ExhaustedHandler = Callable[[Msg, BaseException], Awaitable[None]]


@dataclass
class DurableConsumer:
    """A durable pull consumer: ack on success, delayed NAK with backoff, TERM when exhausted."""

    js: JetStreamContext
    stream: str
    durable: str
    subjects: Sequence[str]
    handler: Handler
    on_exhausted: ExhaustedHandler | None = None
    concurrency: int = 1
    ack_wait: float = 30.0
    backoff: tuple[float, ...] = RETRY_BACKOFF_SECONDS
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _sub: JetStreamContext.PullSubscription | None = None

    @property
    def max_deliver(self) -> int:
        return len(self.backoff) + 1

    def config(self) -> ConsumerConfig:
        subjects = list(self.subjects)
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
            max_ack_pending=max(64, self.concurrency * 4),
        )

    async def start(self) -> None:
        sub = await self.js.pull_subscribe(
            subject=self.subjects[0] if len(self.subjects) == 1 else "",
            durable=self.durable,
            stream=self.stream,
            config=self.config(),
        )
        self._sub = sub
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._loop(sub), name=f"{self.durable}-{i}"))

    async def stop(self, grace: float = 0.0) -> None:
        """Stops taking messages; those in hand get `grace` seconds to finish (drain).

        What is still running after that is cancelled and handed back un-acked, so another
        worker takes it at once: nothing is acked unfinished, nothing finished is thrown away.
        """
        self._stopping.set()
        if grace > 0 and self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sub.unsubscribe(), 2.0)
            self._sub = None

    async def _loop(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            for msg in await self._fetch(sub, 1, 1.0):
                if self._stopping.is_set():
                    # Fetched while stopping: hand it back untouched for another worker.
                    await self._hand_back(msg)
                    continue
                await self._handle(msg)

    async def _fetch(
        self, sub: JetStreamContext.PullSubscription, most: int, wait: float
    ) -> list[Msg]:
        """Up to `most` messages, waiting at most `wait` seconds for the first (none: an empty
        list); a failed fetch is logged and retried after a second."""
        try:
            msgs: list[Msg] = await sub.fetch(most, timeout=wait)
        except (TimeoutError, NatsTimeoutError):
            return []
        except Exception as exc:
            log.warning("consumer_fetch_failed", consumer=self.durable, error=str(exc))
            await asyncio.sleep(1.0)
            return []
        return msgs

    async def _handle(self, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        keepalive = asyncio.create_task(self._keep_in_progress((msg,)))
        span_ctx = extract_context(msg.headers)
        try:
            with tracer(__name__).start_as_current_span(f"consume {msg.subject}", context=span_ctx):
                await self.handler(msg)
        except asyncio.CancelledError:
            # Shutdown mid-job, past the drain grace: un-acked, handed back for redelivery now
            # rather than after ack_wait.
            await self._hand_back(msg)
            raise
        except PermanentError as exc:
            EVENTS_CONSUMED.labels(self.durable, "failed").inc()
            log.error(
                "message_rejected", consumer=self.durable, subject=msg.subject, error=str(exc)
            )
            await msg.term()
            if self.on_exhausted:
                await self.on_exhausted(msg, exc)
        except Exception as exc:
            EVENTS_CONSUMED.labels(self.durable, "failed").inc()
            if delivered >= self.max_deliver:
                log.error(
                    "message_retries_exhausted",
                    consumer=self.durable,
                    subject=msg.subject,
                    delivered=delivered,
                    error=str(exc),
                )
                await msg.term()
                if self.on_exhausted:
                    await self.on_exhausted(msg, exc)
            else:
                delay = self.backoff[min(delivered - 1, len(self.backoff) - 1)]
                log.warning(
                    "message_retry_scheduled",
                    consumer=self.durable,
                    subject=msg.subject,
                    delivered=delivered,
                    retry_in_s=delay,
                    error=str(exc),
                )
                await msg.nak(delay=delay)
        else:
            await msg.ack()
        finally:
            keepalive.cancel()

    async def _hand_back(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(msg.nak(), 2.0)

    async def _keep_in_progress(self, msgs: Sequence[Msg]) -> None:
        # Long LLM calls outlive ack_wait; tell JetStream the job is alive.
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()


BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]
# How long a batch's second fetch waits: long enough for the server to send what it holds.
_TAKE_WAITING = 0.05


@dataclass(kw_only=True)
class BatchDurableConsumer(DurableConsumer):
    """A durable pull consumer that takes its messages in batches, for handlers whose cost is
    mostly per transaction (round trips), not per message.

    A batch is the first message(s) to arrive and what follows within `batch_wait` seconds, at
    most `batch_size`; `batch_handler` applies them together and they are all acked after it
    returns. When it fails (a poison message, a transient error), each message of the batch goes
    through `handler` alone, with DurableConsumer's ack / NAK with backoff / TERM, so one bad
    message delays the others once and never fails them. A batch of one goes straight there.
    `batch_handler` must be all or nothing (one transaction): a failed batch changed nothing.
    """

    batch_handler: BatchHandler
    batch_size: int = 64
    batch_wait: float = 0.5

    def config(self) -> ConsumerConfig:
        config = super().config()
        # A fetch of batch_size must not be capped by the messages in hand.
        config.max_ack_pending = max(config.max_ack_pending or 0, self.batch_size * 2)
        return config

    async def _loop(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            msgs = await self._fetch(sub, self.batch_size, 1.0)
            if msgs and len(msgs) < self.batch_size:
                # A fetch returns as soon as anything is there; the rest of the batch is what
                # arrives in the next batch_wait seconds (held by the server meanwhile).
                try:
                    await asyncio.sleep(self.batch_wait)
                except asyncio.CancelledError:
                    for msg in msgs:
                        await self._hand_back(msg)
                    raise
                msgs += await self._fetch(sub, self.batch_size - len(msgs), _TAKE_WAITING)
            if self._stopping.is_set():
                for msg in msgs:  # fetched while stopping: hand back untouched
                    await self._hand_back(msg)
            elif len(msgs) == 1:
                await self._handle(msgs[0])
            elif msgs:
                await self._handle_batch(msgs)

    async def _handle_batch(self, msgs: Sequence[Msg]) -> None:
        keepalive = asyncio.create_task(self._keep_in_progress(msgs))
        try:
            with tracer(__name__).start_as_current_span(
                f"consume batch {self.durable}",
                links=[_link(msg) for msg in msgs],
                attributes={"messaging.batch.message_count": len(msgs)},
            ):
                await self.batch_handler(msgs)
        except asyncio.CancelledError:
            for msg in msgs:
                await self._hand_back(msg)
            raise
        except Exception as exc:
            log.warning(
                "message_batch_failed",
                consumer=self.durable,
                messages=len(msgs),
                error=str(exc),
                then="one_by_one",
            )
            keepalive.cancel()
            for msg in msgs:
                await self._handle(msg)
        else:
            for msg in msgs:
                await msg.ack()
        finally:
            keepalive.cancel()


def _link(msg: Msg) -> trace.Link:
    """A link from a batch's span to the span that sent one of its messages."""
    return trace.Link(trace.get_current_span(extract_context(msg.headers)).get_span_context())


async def pending_messages(js: JetStreamContext, stream: str) -> int:
    """Messages stored in a stream (for a work queue: jobs not yet done)."""
    info = await js.stream_info(stream)
    return int(info.state.messages)


def headers_of(msg: Msg) -> dict[str, Any]:
    return dict(msg.headers or {})
