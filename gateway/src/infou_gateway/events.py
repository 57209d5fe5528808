"""What the gateway consumes: catalog changes invalidate the cached responses at once."""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infou_gateway.cache import LEVELS_KEY, MAIN_TOPICS_KEY, ResponseCache
from infou_libs.logging import get_logger
from infou_libs.messaging import EVENTS_STREAM, DurableConsumer
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

CATALOG_CHANGED = "events.catalog.changed"


def cache_invalidation_consumer(js: JetStreamContext, cache: ResponseCache) -> DurableConsumer:
    async def on_catalog_changed(msg: Msg) -> None:
        event = events_pb2.CatalogChanged.FromString(msg.data)
        keys = [MAIN_TOPICS_KEY]
        if event.levels_changed:
            keys.append(LEVELS_KEY)
        patterns = tuple(f"st:c:{topic_id}:*" for topic_id in event.main_topic_ids)
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
