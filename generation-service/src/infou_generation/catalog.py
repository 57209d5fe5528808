"""catalog-service as generation-service sees it: main topics and their curated sub-topics."""

from __future__ import annotations

from typing import Any

from infou_libs.errors import DomainError, InvalidArgument, NotFound, Unavailable
from infou_libs.grpc_client import ServiceClient
from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc


class CatalogClient:
    """catalog-service through the libs gRPC client (one channel; every call has the deadline)."""

    def __init__(self, addr: str, deadline: float) -> None:
        self._client = ServiceClient(addr, deadline)
        self._stub = catalog_pb2_grpc.CatalogServiceStub(self._client.channel)

    async def close(self) -> None:
        await self._client.close()

    async def main_topic(
        self, topic_id: int, *, field: str = "main_topic_id"
    ) -> catalog_pb2.MainTopicDetail:
        """The topic with its curated sub-topics; NotFound names `field`."""
        if topic_id < 1:
            raise InvalidArgument(f"{field} must be a positive integer", field=field)
        try:
            return await self._client.call(
                self._stub.GetMainTopic, catalog_pb2.GetMainTopicRequest(id=topic_id)
            )
        except NotFound:
            raise NotFound("no main topic with this id", field=field) from None
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message or "invalid main topic", field=field) from None
        except DomainError as exc:
            # Whatever else went wrong there, the caller may try again (HTTP 503).
            raise Unavailable(f"catalog-service did not answer ({exc.status.name})") from None


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
