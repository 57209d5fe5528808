"""POST /articles/{id}/feedback, POST /sessions/{id}/progress (PRD §3.7) and, beyond the PRD,
GET /sessions/{id}/analytics. Each needs the session's token; session-service checks it through
feedback-service (401 without a valid one, 404 for another session's, 410 once expired)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from infou_gateway.auth import SessionToken
from infou_gateway.path_params import PATH_PARAM_PATTERN
from infou_gateway.routes.sessions import ERRORS, iso
from infou_gateway.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    ProgressRequest,
    ProgressResponse,
    SessionAnalyticsResponse,
)
from infou_gateway.state import State
from infou_protos.feedback.v1 import feedback_pb2

router = APIRouter(tags=["feedback"])

ArticleId = Annotated[str, Path(min_length=1, max_length=80, pattern=PATH_PARAM_PATTERN)]
SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=PATH_PARAM_PATTERN)]


def _fraction(message: Any, name: str) -> float | None:
    return round(float(getattr(message, name)), 2) if message.HasField(name) else None


def feedback_json(f: feedback_pb2.Feedback) -> dict[str, Any]:
    return {
        "id": f.id,
        "article_id": f.article_id,
        "session_id": f.session_id,
        "rating": f.rating,
        "feedback_type": list(f.feedback_type),
        "comments": f.comments or None,
        "difficulty_perceived": f.difficulty_perceived or None,
        "user_level_at_time": f.user_level_at_time or None,
        "time_spent_reading": f.time_spent_reading,
        "scroll_depth": _fraction(f, "scroll_depth"),
        "created_at": iso(f.created_at),
        "updated_at": iso(f.updated_at),
        "replaced": bool(f.previous_rating),
        "previous_rating": f.previous_rating or None,
    }


def progress_json(e: feedback_pb2.ProgressEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "session_id": e.session_id,
        "article_id": e.article_id,
        "action": e.action,
        "time_spent": e.time_spent,
        "scroll_depth": _fraction(e, "scroll_depth"),
        "engagement_score": _fraction(e, "engagement_score"),
        "level": e.level or None,
        "from_level": e.from_level or None,
        "to_level": e.to_level or None,
        "device_type": e.device_type or None,
        "timestamp": iso(e.timestamp),
    }


def analytics_json(a: feedback_pb2.SessionAnalytics) -> dict[str, Any]:
    return {
        "session_id": a.session_id,
        "completion_rate": round(a.completion_rate, 2),
        "avg_time_per_article": a.avg_time_per_article,
        "total_engagement_score": round(a.total_engagement_score, 2),
        "positive_feedback_count": a.positive_feedback_count,
        "negative_feedback_count": a.negative_feedback_count,
        "avg_difficulty_rating": round(a.avg_difficulty_rating, 1),
        "level_switches_count": a.level_switches_count,
        "most_used_level": a.most_used_level or None,
        "preferred_article_length": a.preferred_article_length or None,
        "completed_articles": a.completed_articles,
        "total_articles": a.total_articles,
        "total_time_spent": a.total_time_spent,
        "feedback_count": a.feedback_count,
        "current_level": a.current_level,
        "adaptive_difficulty": a.adaptive_difficulty,
        "last_calculated_at": iso(a.last_calculated_at),
    }


@router.post(
    "/articles/{article_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackResponse,
    responses=ERRORS,
)
async def submit_feedback(
    state: State, article_id: ArticleId, body: FeedbackRequest, token: SessionToken
) -> Any:
    """Rates an article of the session; a second rating of it replaces the first."""
    reply = await state.clients.feedback.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(
            article_id=article_id,
            session_id=body.session_id,
            rating=body.rating,
            feedback_type=body.feedback_type,
            comments=body.comments or "",
            difficulty_perceived=body.difficulty_perceived or "",
            access_token=token,
        ),
        timeout=state.clients.deadline,
    )
    return feedback_json(reply)


@router.post(
    "/sessions/{session_id}/progress",
    status_code=status.HTTP_201_CREATED,
    response_model=ProgressResponse,
    responses=ERRORS,
)
async def record_progress(
    state: State, session_id: SessionId, body: ProgressRequest, token: SessionToken
) -> Any:
    """Logs what the learner did with an article of the session."""
    reply = await state.clients.feedback.RecordProgress(
        feedback_pb2.RecordProgressRequest(
            session_id=session_id,
            article_id=body.article_id,
            action=body.action,
            time_spent=body.time_spent,
            scroll_depth=body.scroll_depth,
            engagement_score=body.engagement_score,
            device_type=body.device_type or "",
            referrer_url=body.referrer_url or "",
            level=body.level or "",
            from_level=body.from_level or "",
            to_level=body.to_level or "",
            access_token=token,
        ),
        timeout=state.clients.deadline,
    )
    return progress_json(reply)


@router.get(
    "/sessions/{session_id}/analytics",
    response_model=SessionAnalyticsResponse,
    responses=ERRORS,
)
async def session_analytics(state: State, session_id: SessionId, token: SessionToken) -> Any:
    """The session's analytics, from its progress entries and feedback."""
    reply = await state.clients.feedback.GetAnalytics(
        feedback_pb2.GetAnalyticsRequest(session_id=session_id, access_token=token),
        timeout=state.clients.deadline,
    )
    return analytics_json(reply)
