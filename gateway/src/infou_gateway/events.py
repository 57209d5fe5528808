"""What the gateway consumes: catalog changes invalidate the cached responses at once (no
database, so no claim: dropping a cache key twice is harmless), and every replica hears each
session's progress (core NATS), which drops that session's cached reads."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infou_gateway.cache import (
    LEVELS_KEY,
    MAIN_TOPICS_KEY,
    ResponseCache,
    curated_pattern,
    main_topic_key,
)
from infou_gateway.session_cache import SessionReads
from infou_libs import subjects
from infou_libs.consume import decoding_handler
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)


def cache_invalidation_consumer(js: JetStreamContext, cache: ResponseCache) -> DurableConsumer:
    async def on_catalog_changed(event: events_pb2.CatalogChanged) -> None:
        # Every change can move a topic's numbers in the list, so the whole list goes; the
        # topics named lose their detail and every level's curated list.
        keys = [MAIN_TOPICS_KEY, *(main_topic_key(slug) for slug in event.main_topic_slugs)]
        if event.levels_changed:
            keys.append(LEVELS_KEY)
        patterns = tuple(curated_pattern(topic_id) for topic_id in event.main_topic_ids)
        if event.main_topic_ids and not event.main_topic_slugs:
            patterns += (main_topic_key("*"),)  # a producer that names topics by id only
        removed = await cache.invalidate(*keys, patterns=patterns)
        log.info(
            "cache_invalidated",
            reason=event.reason,
            main_topic_ids=list(event.main_topic_ids),
            keys_removed=removed,
        )

    return DurableConsumer(
        js=js,
        stream=subjects.EVENTS_STREAM,
        durable="gateway-cache",
        subjects=[subjects.CATALOG_CHANGED],
        handler=decoding_handler(events_pb2.CatalogChanged, on_catalog_changed),
    )


async def watch_session_progress(nc: NatsClient, reads: SessionReads) -> None:
    """Subscribes this replica to every session's progress; each message drops its cached reads
    (the subject names the session: the payload need not be decoded)."""

    async def on_progress(msg: Msg) -> None:
        await reads.invalidate(msg.subject.removeprefix(subjects.PROGRESS_PREFIX))

    await nc.subscribe(subjects.PROGRESS_WILDCARD, cb=on_progress)
