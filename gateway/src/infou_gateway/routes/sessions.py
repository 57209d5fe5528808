"""POST /sessions, GET /sessions/{id}, GET /sessions/{id}/curriculum, POST /sessions/{id}/retry
(PRD §3.4-3.5). Every call but the creation needs the session's token (auth.py)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import Response
from google.protobuf.timestamp_pb2 import Timestamp

from infou_gateway.auth import SessionToken
from infou_gateway.cache import Target, encode
from infou_gateway.idempotency import IdempotencyKey
from infou_gateway.identity import Client
from infou_gateway.path_params import PATH_PARAM_PATTERN
from infou_gateway.quotas import CurrentClient, create_within_quota
from infou_gateway.schemas import (
    CurriculumResponse,
    ErrorResponse,
    SessionCreated,
    SessionCreateRequest,
    SessionStatus,
)
from infou_gateway.session_cache import Loaded, curriculum_key, session_key
from infou_gateway.state import GatewayState, State
from infou_libs.durations import korean_duration, korean_minutes
from infou_libs.errors import InvalidArgument
from infou_protos.session.v1 import session_pb2

router = APIRouter(tags=["sessions"])

SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=PATH_PARAM_PATTERN)]
# The random part of a personalised sub-topic's id (generation-service makes 22 characters).
GENERATED_KEY = re.compile(r"[A-Za-z0-9_-]{16,40}")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no valid session token"},
    404: {"model": ErrorResponse, "description": "no such session for this token"},
    410: {"model": ErrorResponse, "description": "the session expired"},
    422: {"model": ErrorResponse, "description": "a field is invalid; `field` names it"},
}
# A create's 422: learner text is also moderated before anything is spent.
FLAGGED_OR_INVALID: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "a field is invalid (VALIDATION_ERROR …) or its text failed moderation "
    "(CONTENT_FLAGGED); `field` names it",
}
# What a create may answer besides its success and a 422.
CREATE_REFUSALS: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED, DAILY_QUOTA_EXCEEDED or BUDGET_EXHAUSTED; see Retry-After",
    },
    503: {"model": ErrorResponse, "description": "try again after Retry-After (same key)"},
}


def iso(stamp: Timestamp | None) -> str | None:
    if stamp is None or (not stamp.seconds and not stamp.nanos):
        return None
    moment = stamp.ToDatetime(tzinfo=dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def websocket_url(request: Request, session_id: str) -> str:
    """ws(s)://<host the client used>/sessions/<id>/ws (behind a trusted proxy uvicorn has
    already taken the scheme from X-Forwarded-Proto)."""
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    return f"{'wss' if scheme in ('https', 'wss') else 'ws'}://{host}/sessions/{session_id}/ws"


def parse_sub_topic_ids(ids: list[str]) -> list[session_pb2.SubTopicRef]:
    """`curated_<n>` / `generated_<random id>` → refs; a 422 naming the first bad one."""
    refs = []
    for i, raw in enumerate(ids):
        kind, _, rest = raw.partition("_")
        if kind == "curated" and rest.isdigit() and len(rest) <= 9:
            refs.append(session_pb2.SubTopicRef(type=kind, id=int(rest)))
        elif kind == "generated" and GENERATED_KEY.fullmatch(rest):
            refs.append(session_pb2.SubTopicRef(type=kind, key=rest))
        else:
            raise InvalidArgument(
                f"sub_topic_ids.{i}: expected curated_<n> or generated_<id>",
                field=f"sub_topic_ids.{i}",
                code="VALIDATION_ERROR",
            )
    return refs


def session_json(s: session_pb2.Session) -> dict[str, Any]:
    c, p, g = s.curriculum, s.progress, s.generation_info
    return {
        "session_id": s.session_id,
        "status": s.status,
        "created_at": iso(s.created_at),
        "expires_at": iso(s.expires_at),
        "curriculum": {
            "title": c.title,
            "level": c.level,
            "total_articles": c.total_articles,
            "completed_articles": c.completed_articles,
            "estimated_completion_time": c.estimated_completion_time,
            "generated_articles": c.generated_articles,
            "failed_articles": c.failed_articles,
        },
        "progress": {
            "current_article_id": p.current_article_id or None,
            "completion_percentage": p.completion_percentage,
            "time_spent": korean_minutes(p.time_spent_seconds),
            "last_accessed": iso(p.last_accessed) if p.HasField("last_accessed") else None,
        },
        "generation_info": {
            "llm_model": g.llm_model or None,
            "generation_time": korean_duration(g.generation_time_seconds),
            "total_tokens_used": g.total_tokens_used,
            "cost": round(g.cost_usd, 6),
            "cached_results": g.cached_results,
            "saved_cost": round(g.saved_cost_usd, 6),
        },
        "failure_reason": s.failure_reason or None,
        "main_topic_id": s.main_topic_id,
        "sub_topic_ids": list(s.sub_topic_ids),
    }


@router.post(
    "/sessions",
    response_model=SessionCreated,
    status_code=status.HTTP_201_CREATED,
    responses={422: FLAGGED_OR_INVALID, **CREATE_REFUSALS},
)
async def create_session(
    state: State,
    body: SessionCreateRequest,
    request: Request,
    client: CurrentClient,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Creates a session and starts its generation in the background; watch it on websocket_url.

    Admitted against the daily LLM budget first (429 BUDGET_EXHAUSTED, nothing queued); with an
    Idempotency-Key, a replay returns the same session and a token that opens it."""
    refs = parse_sub_topic_ids(body.sub_topic_ids)
    reply = await create_within_quota(
        state, client, "sessions", lambda: _create(state, body, refs, client, idempotency_key or "")
    )
    return {
        "session_id": reply.session_id,
        "status": reply.status,
        "estimated_total_time": reply.estimated_total_time,
        "websocket_url": websocket_url(request, reply.session_id),
        "access_token": reply.access_token,
        "token_type": "Bearer",
        "estimated_cost_usd": round(reply.estimated_cost_usd, 4),
        "estimated_articles": reply.estimated_articles,
        "expires_at": iso(reply.expires_at),
    }


async def _create(
    state: GatewayState,
    body: SessionCreateRequest,
    refs: list[session_pb2.SubTopicRef],
    client: Client,
    idempotency_key: str,
) -> session_pb2.CreateSessionResponse:
    p, o = body.personalization, body.options
    reply: session_pb2.CreateSessionResponse = await state.clients.session.CreateSession(
        session_pb2.CreateSessionRequest(
            main_topic_id=body.main_topic_id,
            sub_topics=refs,
            level=body.level,
            personalization=session_pb2.SessionPersonalization(
                learning_pace=p.learning_pace,
                preferred_article_length=p.preferred_article_length,
                include_examples=p.include_examples,
                interests=p.interests,
                learning_goals=p.learning_goals,
                preferred_style=p.preferred_style,
            ),
            options=session_pb2.SessionOptions(
                max_articles_per_subtopic=o.max_articles_per_subtopic or 0,
                enable_adaptive_difficulty=o.enable_adaptive_difficulty,
                include_practice_problems=o.include_practice_problems,
            ),
            client_id=client.hashed_id,
            client_budget_share=client.budget_share,
            idempotency_key=idempotency_key,
        ),
        timeout=state.clients.deadline,
    )
    return reply


def cache_seconds(limit: float, expires_at: Timestamp) -> float:
    """How long a read may be kept: `limit`, never past the session's expiry (then it is 410)."""
    if not expires_at.seconds:
        return 0.0
    left = expires_at.seconds - dt.datetime.now(dt.UTC).timestamp()
    return max(0.0, min(limit, left - 1))


@router.get("/sessions/{session_id}", response_model=SessionStatus, responses=ERRORS)
async def get_session(
    state: State, request: Request, session_id: SessionId, token: SessionToken
) -> Any:
    """The session's status, curriculum summary, progress and what generating it cost."""

    async def load() -> Loaded:
        reply = await state.clients.session.GetSession(
            session_pb2.GetSessionRequest(session_id=session_id, access_token=token),
            timeout=state.clients.deadline,
        )
        ttl = cache_seconds(state.settings.session_cache_seconds, reply.expires_at)
        return Loaded(
            200, encode(session_json(reply)), ttl if reply.session_id == session_id else 0
        )

    read = await state.session_reads.served(
        "session", session_key(session_id), session_id, token, load, Target.of(request)
    )
    return Response(read.body, status_code=read.status, media_type="application/json")


@router.get(
    "/sessions/{session_id}/curriculum",
    response_model=CurriculumResponse,
    responses={**ERRORS, 202: {"model": CurriculumResponse, "description": "not planned yet"}},
)
async def get_curriculum(
    state: State, request: Request, session_id: SessionId, token: SessionToken
) -> Any:
    """The curriculum in reading order; HTTP 202 (no items yet) while it is being planned."""

    async def load() -> Loaded:
        return await _load_curriculum(state, session_id, token)

    read = await state.session_reads.served(
        "curriculum", curriculum_key(session_id), session_id, token, load, Target.of(request)
    )
    return Response(read.body, status_code=read.status, media_type="application/json")


async def _load_curriculum(state: GatewayState, session_id: str, token: str) -> Loaded:
    reply = await state.clients.session.GetCurriculum(
        session_pb2.GetSessionRequest(session_id=session_id, access_token=token),
        timeout=state.clients.deadline,
    )
    body = {
        "session_id": reply.session_id,
        "title": reply.title,
        "level": reply.level,
        "status": reply.status,
        "ready": reply.ready,
        "items": [
            {
                "id": item.id,
                "order": item.order,
                "title": item.title,
                "summary": item.summary,
                "sub_topic": item.sub_topic,
                "sub_topic_id": item.sub_topic_id,
                "estimated_read_time": item.estimated_read_time,
                "key_concepts": list(item.key_concepts),
                "is_generated": True,
                "difficulty_indicators": list(item.difficulty_indicators),
                "prerequisites": list(item.prerequisites),
                "status": item.status,
                "content_ready": item.status == "ready",
            }
            for item in reply.items
        ],
    }
    if not reply.ready:
        return Loaded(status.HTTP_202_ACCEPTED, encode(body))
    # The curriculum message does not carry the expiry: kept no longer than the session's read.
    return Loaded(200, encode(body), state.settings.session_cache_seconds)


@router.post(
    "/sessions/{session_id}/retry",
    response_model=SessionStatus,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**ERRORS, 409: {"model": ErrorResponse, "description": "nothing failed"}},
)
async def retry_session(state: State, session_id: SessionId, token: SessionToken) -> Any:
    """Generates again what failed (the curriculum, or the failed articles)."""
    reply = await state.clients.session.RetrySession(
        session_pb2.GetSessionRequest(session_id=session_id, access_token=token),
        timeout=state.clients.deadline,
    )
    # Its progress messages drop the cached reads too; this replica need not wait for them.
    await state.session_reads.invalidate(session_id)
    return session_json(reply)
