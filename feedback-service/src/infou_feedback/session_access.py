"""Asks session-service (gRPC AuthorizeArticle) whether a token opens a session and an article
of it, and what feedback needs to know of them. session-service is the one place that decides
access: its refusals (401, 404 naming the field, 410) pass through unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from infou_libs.errors import (
    DomainError,
    FailedPrecondition,
    Gone,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from infou_libs.grpc_client import ServiceClient, domain_error_from
from infou_protos.session.v1 import session_pb2, session_pb2_grpc


@dataclass(frozen=True)
class Access:
    """What session-service said about the session (and the article) a request is about."""

    session_id: str
    main_topic_id: int
    session_level: str
    adaptive_difficulty: bool
    total_articles: int
    article_ids: Sequence[str] = field(default_factory=tuple)
    article_id: str = ""
    level: str = ""  # the article's own level
    sub_topic_type: str = ""  # curated | generated
    sub_topic_id: int = 0
    word_count: int = 0


# session-service's refusals pass through as they are; anything else means it did not answer.
_REFUSALS = (Unauthenticated, NotFound, InvalidArgument, Gone, FailedPrecondition)


def refusal(exc: grpc.aio.AioRpcError) -> DomainError:
    """session-service's answer as the same domain error (code and field kept)."""
    error = domain_error_from(exc)
    if isinstance(error, _REFUSALS):
        return error
    return Unavailable(f"session-service did not answer ({exc.code().name})")


class SessionAccess:
    """The gRPC client of AuthorizeArticle; every call has a deadline."""

    def __init__(self, addr: str, deadline: float) -> None:
        self._client = ServiceClient(addr, deadline)
        self._stub = session_pb2_grpc.SessionServiceStub(self._client.channel)

    async def close(self) -> None:
        await self._client.close()

    async def authorize(self, session_id: str, article_id: str, token: str) -> Access:
        """The session (and article) `token` opens; raises session-service's refusal."""
        request = session_pb2.AuthorizeArticleRequest(
            session_id=session_id, article_id=article_id, access_token=token
        )
        try:
            reply = await self._stub.AuthorizeArticle(request, timeout=self._client.deadline)
        except grpc.aio.AioRpcError as exc:
            raise refusal(exc) from exc
        return Access(
            session_id=reply.session_id,
            main_topic_id=reply.main_topic_id,
            session_level=reply.session_level,
            adaptive_difficulty=reply.adaptive_difficulty,
            total_articles=reply.total_articles,
            article_ids=tuple(reply.article_ids),
            article_id=reply.article_id,
            level=reply.level,
            sub_topic_type=reply.sub_topic_type,
            sub_topic_id=reply.sub_topic_id,
            word_count=reply.word_count,
        )
