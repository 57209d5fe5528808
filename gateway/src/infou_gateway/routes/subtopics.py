"""POST /sub-topics/generate and GET /sub-topics/generated/{generation_id} (PRD §3.3).

The POST only stores the request and its job (generation-service, one transaction) and answers
at once; a generation worker does the LLM work. Clients poll the GET until the status leaves
`processing`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from google.protobuf.timestamp_pb2 import Timestamp

from infou_gateway.idempotency import IdempotencyKey
from infou_gateway.identity import Client
from infou_gateway.path_params import PATH_PARAM_PATTERN
from infou_gateway.quotas import CurrentClient, create_within_quota
from infou_gateway.schemas import (
    ErrorResponse,
    SubTopicGenerateAccepted,
    SubTopicGenerateRequest,
    SubTopicGenerationResult,
)
from infou_gateway.state import GatewayState, State
from infou_protos.generation.v1 import generation_pb2

router = APIRouter(tags=["sub-topics"])

ACCEPTED_MESSAGE = "AI가 당신의 관심사를 분석하고 맞춤 주제를 생성하고 있습니다..."

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown main topic or generation"},
    422: {"model": ErrorResponse, "description": "a field is invalid; `field` names it"},
}
_CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    422: {
        "model": ErrorResponse,
        "description": "a field is invalid (VALIDATION_ERROR …) or its text failed moderation "
        "(CONTENT_FLAGGED); `field` names it",
    },
    429: {
        "model": ErrorResponse,
        "description": "RATE_LIMITED, DAILY_QUOTA_EXCEEDED or BUDGET_EXHAUSTED; see Retry-After",
    },
    503: {"model": ErrorResponse, "description": "try again after Retry-After (same key)"},
}


def _iso(stamp: Timestamp) -> str:
    moment = stamp.ToDatetime(tzinfo=dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _requester(request: Request) -> str:
    """An anonymous, stable id of the caller for the request log (no address is stored)."""
    host = request.client.host if request.client else ""
    agent = request.headers.get("user-agent", "")
    return "anon_" + hashlib.sha256(f"{host}|{agent}".encode()).hexdigest()[:12]


def generated_json(item: generation_pb2.GeneratedSubTopic) -> dict[str, Any]:
    return {
        "id": f"generated_{item.public_id}",
        "main_topic_id": item.main_topic_id,
        "slug": item.slug,
        "name": item.name,
        "description": item.description,
        "estimated_learning_time": item.estimated_learning_time,
        "prerequisites": list(item.prerequisites),
        "practical_projects": list(item.practical_projects),
        "learning_outcomes": list(item.learning_outcomes),
        "difficulty_focus": item.difficulty_focus,
        "source_type": "generated",
    }


@router.post(
    "/sub-topics/generate",
    response_model=SubTopicGenerateAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_CREATE_ERRORS,
)
async def generate_sub_topics(
    state: State,
    body: SubTopicGenerateRequest,
    request: Request,
    client: CurrentClient,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Starts a personalised sub-topic generation; poll GET /sub-topics/generated/{id}.

    Admitted against the daily LLM budget first (429 BUDGET_EXHAUSTED, nothing queued); with an
    Idempotency-Key, a replay returns the same generation."""
    reply = await create_within_quota(
        state,
        client,
        "generations",
        lambda: _request(state, body, request, client, idempotency_key or ""),
    )
    return {
        "generation_id": reply.generation_id,
        "status": reply.status,
        "estimated_completion": _iso(reply.estimated_completion),
        "message": ACCEPTED_MESSAGE,
    }


async def _request(
    state: GatewayState,
    body: SubTopicGenerateRequest,
    request: Request,
    client: Client,
    idempotency_key: str,
) -> generation_pb2.RequestSubTopicsResponse:
    p = body.personalization
    reply: generation_pb2.RequestSubTopicsResponse = (
        await state.clients.generation.RequestSubTopics(
            generation_pb2.RequestSubTopicsRequest(
                main_topic_id=body.main_topic_id,
                personalization=generation_pb2.Personalization(
                    interests=p.interests,
                    current_level=p.current_level or "",
                    learning_goals=p.learning_goals,
                    time_availability=p.time_availability,
                    preferred_style=p.preferred_style,
                ),
                options=generation_pb2.SubTopicOptions(
                    max_subtopics=body.options.max_subtopics,
                    include_prerequisites=body.options.include_prerequisites,
                    difficulty_progression=body.options.difficulty_progression,
                ),
                requester_id=_requester(request),
                client_id=client.hashed_id,
                client_budget_share=client.budget_share,
                idempotency_key=idempotency_key,
            ),
            timeout=state.clients.deadline,
        )
    )
    return reply


@router.get(
    "/sub-topics/generated/{generation_id}",
    response_model=SubTopicGenerationResult,
    response_model_exclude_none=True,
    responses=_ERRORS,
)
async def get_generated_sub_topics(
    state: State,
    generation_id: Annotated[str, Path(max_length=64, pattern=PATH_PARAM_PATTERN)],
) -> Any:
    """A generation's status and, once completed, its sub-topics (ids "generated_<random>")."""
    reply = await state.clients.generation.GetSubTopicGeneration(
        generation_pb2.GetSubTopicGenerationRequest(generation_id=generation_id),
        timeout=state.clients.deadline,
    )
    body: dict[str, Any] = {
        "generation_id": reply.generation_id,
        "status": reply.status,
        "items": [generated_json(item) for item in reply.items],
    }
    if reply.status == "failed":
        body["error"] = {"code": reply.error_code, "message": reply.error_message}
    return body
