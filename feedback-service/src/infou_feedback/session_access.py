"""Asks session-service (gRPC AuthorizeArticle) whether a token opens a session and an article
of it, and what feedback needs to know of them. session-service is the one place that decides
access: its refusals (401, 404 naming the field, 410) pass through unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from infou_libs.errors import (
    ERROR_CODE_KEY,
    ERROR_FIELD_KEY,
    DomainError,
    FailedPrecondition,
    Gone,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
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


class SessionUnavailable(DomainError):
    """session-service did not answer: nothing can be checked, so nothing is recorded."""

    status = grpc.StatusCode.UNAVAILABLE
    code = "SERVICE_UNAVAILABLE"


_REFUSALS: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: Gone,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def _trailer(exc: grpc.aio.AioRpcError, key: str) -> str:
    metadata: Any = exc.trailing_metadata() or ()
    for item in metadata:
        if item[0] == key:
            return str(item[1])
    return ""


def refusal(exc: grpc.aio.AioRpcError) -> DomainError:
    """session-service's answer as the same domain error (code and field kept)."""
    kind = _REFUSALS.get(exc.code())
    if kind is None:
        return SessionUnavailable(f"session-service did not answer ({exc.code().name})")
    return kind(
        exc.details() or exc.code().name,
        field=_trailer(exc, ERROR_FIELD_KEY) or None,
        code=_trailer(exc, ERROR_CODE_KEY) or None,
    )


class SessionAccess:
    """The gRPC client of AuthorizeArticle; every call has a deadline."""

    def __init__(self, addr: str, deadline: float) -> None:
        interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
        self._channel = grpc.aio.insecure_channel(addr, interceptors=interceptors)
        self._stub = session_pb2_grpc.SessionServiceStub(self._channel)
        self._deadline = deadline

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def authorize(self, session_id: str, article_id: str, token: str) -> Access:
        """The session (and article) `token` opens; raises session-service's refusal."""
        try:
            reply = await self._stub.AuthorizeArticle(
                session_pb2.AuthorizeArticleRequest(
                    session_id=session_id, article_id=article_id, access_token=token
                ),
                timeout=self._deadline,
            )
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
