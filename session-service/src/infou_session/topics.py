"""What a learner selects, resolved through catalog-service and generation-service (gRPC).

Main topics (with their curated sub-topics) are kept in process for `topic_cache_seconds`: every
create asked catalog-service over gRPC before, the largest share of a create's time. What is kept
are the facts a session stores (names, descriptions, outcomes), which change only when the
catalog's content is seeded again; `events.catalog.changed` for such a change drops the topics it
names at once (statistics-only changes, one per created session, do not touch these facts). A
missed event leaves a topic at most `topic_cache_seconds` old. Concurrent misses of one topic
share one call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from infou_libs.errors import InvalidArgument, NotFound, Unavailable
from infou_libs.grpc_client import ServiceClient
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2
from infou_protos.generation.v1 import generation_pb2, generation_pb2_grpc

SUB_TOPIC_TYPES = ("curated", "generated")
# CatalogChanged reasons that change only statistics (counts, ratings), never a cached fact.
STATISTICS_ONLY = frozenset({"session_created", "subtopics_generated", "feedback", "analytics"})


@dataclass(frozen=True)
class SubTopicRef:
    type: str  # curated | generated
    id: int = 0  # curated ones
    key: str = ""  # generated ones: the random part of "generated_<key>"

    @property
    def public_id(self) -> str:
        return f"{self.type}_{self.key or self.id}"


def public_ref(selected: Sequence[dict[str, Any]], kind: str, sub_topic_id: int) -> str:
    """The public id of a selected sub-topic, from the facts kept with its session."""
    for sub in selected:
        if sub["type"] == kind and int(sub["id"]) == sub_topic_id:
            return str(sub["ref"])
    return f"{kind}_{sub_topic_id}"


@dataclass(frozen=True)
class Selection:
    """The main topic and the sub-topics, as facts to keep with the session."""

    main_topic: dict[str, Any]
    sub_topics: list[dict[str, Any]]


class TopicDirectory:
    """Looks topics up in the services that own them; every call has a deadline."""

    def __init__(
        self,
        catalog_addr: str,
        generation_addr: str,
        deadline: float,
        *,
        cache_seconds: float = 0.0,
    ) -> None:
        self._cache_seconds = cache_seconds
        self._topics: dict[int, tuple[float, catalog_pb2.MainTopicDetail]] = {}
        self._loading: dict[int, asyncio.Task[catalog_pb2.MainTopicDetail]] = {}
        self._epoch = 0  # bumped by each invalidation: a call begun before it is not kept
        self._catalog_client = ServiceClient(catalog_addr, deadline)
        self._generation_client = ServiceClient(generation_addr, deadline)
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(self._catalog_client.channel)
        self._generation = generation_pb2_grpc.GenerationServiceStub(
            self._generation_client.channel
        )

    async def close(self) -> None:
        await self._catalog_client.close()
        await self._generation_client.close()

    async def resolve(self, main_topic_id: int, refs: Sequence[SubTopicRef]) -> Selection:
        """The selection's facts; InvalidArgument names the first field that is wrong."""
        generated_keys = [r.key for r in refs if r.type == "generated"]
        topic_call = self._main_topic(main_topic_id)
        generated_call = self._generated(generated_keys)
        results = await asyncio.gather(topic_call, generated_call, return_exceptions=True)
        topic_reply, generated = results
        if isinstance(topic_reply, (NotFound, InvalidArgument)):
            raise InvalidArgument("no main topic with this id", field="main_topic_id")
        for result in results:
            if isinstance(result, Unavailable):
                message = "the topics could not be looked up just now; try again"
                raise Unavailable(message) from result
            if isinstance(result, BaseException):
                raise result
        assert isinstance(topic_reply, catalog_pb2.MainTopicDetail)
        assert isinstance(generated, dict)
        topic = topic_reply.topic
        curated = {s.id: s for s in topic_reply.sub_topics}
        sub_topics: list[dict[str, Any]] = []
        for i, ref in enumerate(refs):
            field = f"sub_topic_ids.{i}"
            if ref.type == "curated":
                sub = curated.get(ref.id)
                if sub is None:
                    raise InvalidArgument(
                        f"{ref.public_id} is not a curated sub-topic of this main topic",
                        field=field,
                    )
                sub_topics.append(_curated_fact(sub))
            else:
                gen = generated.get(ref.key)
                if gen is None:
                    raise InvalidArgument(f"no generated sub-topic {ref.public_id}", field=field)
                if gen.main_topic_id != topic.id:
                    raise InvalidArgument(
                        f"{ref.public_id} belongs to another main topic", field=field
                    )
                sub_topics.append(_generated_fact(gen))
        return Selection(
            main_topic={
                "id": topic.id,
                "slug": topic.slug,
                "name": topic.name,
                "description": topic.description,
                "category": topic.category,
            },
            sub_topics=sub_topics,
        )

    def forget(self, main_topic_ids: Iterable[int] = ()) -> None:
        """Drops the named topics (all of them when none is named)."""
        self._epoch += 1
        ids = list(main_topic_ids)
        if not ids:
            self._topics.clear()
        for topic_id in ids:
            self._topics.pop(topic_id, None)

    def on_catalog_changed(self, event: events_pb2.CatalogChanged) -> None:
        """Drops what a content change made stale; statistics-only changes keep everything."""
        if event.reason in STATISTICS_ONLY and not event.levels_changed:
            return
        self.forget(event.main_topic_ids)

    async def _main_topic(self, topic_id: int) -> catalog_pb2.MainTopicDetail:
        kept = self._topics.get(topic_id)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        loading = self._loading.get(topic_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(topic_id, self._epoch))
            self._loading[topic_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(topic_id, None))
        # Shielded: one caller's deadline or cancellation does not fail the others' shared call.
        return await asyncio.shield(loading)

    async def _load(self, topic_id: int, epoch: int) -> catalog_pb2.MainTopicDetail:
        reply: catalog_pb2.MainTopicDetail = await self._catalog_client.call(
            self._catalog.GetMainTopic, catalog_pb2.GetMainTopicRequest(id=topic_id)
        )
        if self._cache_seconds > 0 and epoch == self._epoch:
            self._topics[topic_id] = (time.monotonic() + self._cache_seconds, reply)
        return reply

    async def _generated(self, keys: list[str]) -> dict[str, generation_pb2.GeneratedSubTopic]:
        if not keys:
            return {}
        reply = await self._generation_client.call(
            self._generation.GetGeneratedSubTopics,
            generation_pb2.GetGeneratedSubTopicsRequest(public_ids=keys),
        )
        return {item.public_id: item for item in reply.items}


def _curated_fact(sub: catalog_pb2.CuratedSubTopic) -> dict[str, Any]:
    return {
        "type": "curated",
        "id": sub.id,
        "ref": f"curated_{sub.id}",
        "slug": sub.slug,
        "name": sub.name,
        "description": sub.description,
        "learning_outcomes": list(sub.learning_outcomes),
        "prerequisites": list(sub.prerequisites),
    }


def _generated_fact(sub: generation_pb2.GeneratedSubTopic) -> dict[str, Any]:
    return {
        "type": "generated",
        "id": sub.id,
        "ref": f"generated_{sub.public_id}",
        "slug": sub.slug,
        "name": sub.name,
        "description": sub.description,
        "learning_outcomes": list(sub.learning_outcomes),
        "prerequisites": list(sub.prerequisites),
    }
