"""What the gateway consumes: catalog changes invalidate the cached responses at once."""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infou_gateway.cache import (
    LEVELS_KEY,
    MAIN_TOPICS_KEY,
    ResponseCache,
    curated_pattern,
    main_topic_key,
)
from infou_libs.logging import get_logger
from infou_libs.messaging import EVENTS_STREAM, DurableConsumer
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

CATALOG_CHANGED = "events.catalog.changed"


def cache_invalidation_consumer(js: JetStreamContext, cache: ResponseCache) -> DurableConsumer:
    async def on_catalog_changed(msg: Msg) -> None:
        event = events_pb2.CatalogChanged.FromString(msg.data)
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
        stream=EVENTS_STREAM,
        durable="gateway-cache",
        subjects=[CATALOG_CHANGED],
        handler=on_catalog_changed,
    )
