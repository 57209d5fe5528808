"""catalog-service as generation-service sees it: main topics and their curated sub-topics."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from infou_libs.errors import DomainError, InvalidArgument, NotFound
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc


class CatalogUnavailable(DomainError):
    """catalog-service did not answer; the caller may try again (HTTP 503)."""

    status = grpc.StatusCode.UNAVAILABLE
    code = "SERVICE_UNAVAILABLE"


class CatalogClient:
    """One channel to catalog-service; every call carries the deadline."""

    def __init__(self, addr: str, deadline: float) -> None:
        self._channel = grpc.aio.insecure_channel(
            addr,
            interceptors=aio_client_interceptors(),  # type: ignore[no-untyped-call]
        )
        self._stub = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._deadline = deadline

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def main_topic(
        self, topic_id: int, *, field: str = "main_topic_id"
    ) -> catalog_pb2.MainTopicDetail:
        """The topic with its curated sub-topics; NotFound names `field`."""
        if topic_id < 1:
            raise InvalidArgument(f"{field} must be a positive integer", field=field)
        try:
            reply = await self._stub.GetMainTopic(
                catalog_pb2.GetMainTopicRequest(id=topic_id), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("no main topic with this id", field=field) from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(exc.details() or "invalid main topic", field=field) from None
            raise CatalogUnavailable(
                f"catalog-service did not answer ({exc.code().name})"
            ) from None
        return reply


def main_topic_context(detail: catalog_pb2.MainTopicDetail) -> dict[str, Any]:
    """The `main_topic` and `curated_sub_topics` keys of a prompt context."""
    topic = detail.topic
    return {
        "main_topic": {
            "id": topic.id,
            "slug": topic.slug,
            "name": topic.name,
            "description": topic.description,
            "category": topic.category,
        },
        "curated_sub_topics": [
            {"name": s.name, "description": s.description} for s in detail.sub_topics
        ],
    }
