"""FeedbackService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_feedback import service
from infou_feedback.models import ArticleFeedback, LearningProgressLog, SessionAnalytics
from infou_feedback.service import AdaptiveRule, AnalyticsView
from infou_feedback.session_access import SessionAccess
from infou_feedback.settings import FeedbackSettings
from infou_libs.db import unit_of_work
from infou_libs.grpc_server import Context
from infou_libs.protobuf import optional_timestamp as _ts
from infou_protos.feedback.v1 import feedback_pb2, feedback_pb2_grpc


def analytics_to_proto(view: AnalyticsView) -> feedback_pb2.SessionAnalytics:
    a: SessionAnalytics = view.analytics
    return feedback_pb2.SessionAnalytics(
        session_id=a.session_id,
        completion_rate=float(a.completion_rate),
        avg_time_per_article=a.avg_time_per_article,
        total_engagement_score=float(a.total_engagement_score),
        positive_feedback_count=a.positive_feedback_count,
        negative_feedback_count=a.negative_feedback_count,
        avg_difficulty_rating=float(a.avg_difficulty_rating),
        level_switches_count=a.level_switches_count,
        most_used_level=a.most_used_level or "",
        preferred_article_length=a.preferred_article_length or 0,
        last_calculated_at=_ts(a.last_calculated_at),
        completed_articles=a.completed_articles,
        total_articles=view.session.total_articles,
        total_time_spent=a.total_time_spent,
        current_level=view.session.current_level,
        adaptive_difficulty=view.session.adaptive_difficulty,
        feedback_count=a.feedback_count,
    )


def feedback_to_proto(f: ArticleFeedback, previous_rating: str) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(
        id=f.id,
        article_id=f.article_id,
        session_id=f.session_id,
        rating=f.rating,
        feedback_type=f.feedback_types,
        comments=f.comments or "",
        difficulty_perceived=f.difficulty_perceived or "",
        created_at=_ts(f.created_at),
        updated_at=_ts(f.updated_at),
        previous_rating=previous_rating,
        user_level_at_time=f.user_level_at_time or "",
        time_spent_reading=f.time_spent_reading or 0,
        scroll_depth=float(f.scroll_depth) if f.scroll_depth is not None else None,
    )


def progress_to_proto(e: LearningProgressLog) -> feedback_pb2.ProgressEntry:
    return feedback_pb2.ProgressEntry(
        id=e.id,
        session_id=e.session_id,
        article_id=e.article_id,
        action=e.action,
        time_spent=e.time_spent_seconds,
        scroll_depth=float(e.scroll_depth) if e.scroll_depth is not None else None,
        engagement_score=float(e.engagement_score) if e.engagement_score is not None else None,
        timestamp=_ts(e.timestamp),
        level=e.level or "",
        from_level=e.from_level or "",
        to_level=e.to_level or "",
        device_type=e.device_type or "",
    )


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: FeedbackSettings,
        access: SessionAccess,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._access = access
        self._rule = AdaptiveRule(settings.adaptive_window, settings.adaptive_threshold)

    async def SubmitFeedback(
        self, request: feedback_pb2.SubmitFeedbackRequest, context: Context
    ) -> feedback_pb2.Feedback:
        checked = service.check_feedback(
            service.FeedbackInput(
                article_id=request.article_id,
                session_id=request.session_id,
                rating=request.rating,
                feedback_types=tuple(request.feedback_type),
                comments=request.comments,
                difficulty_perceived=request.difficulty_perceived,
            ),
            self._settings.max_comment_length,
        )
        access = await self._access.authorize(
            checked.session_id, checked.article_id, request.access_token
        )
        async with unit_of_work(self._sessions) as db:
            submitted = await service.submit_feedback(db, access, checked, self._rule)
        return feedback_to_proto(submitted.feedback, submitted.previous_rating)

    async def RecordProgress(
        self, request: feedback_pb2.RecordProgressRequest, context: Context
    ) -> feedback_pb2.ProgressEntry:
        checked = service.check_progress(
            service.ProgressInput(
                session_id=request.session_id,
                article_id=request.article_id,
                action=request.action,
                time_spent=request.time_spent,
                scroll_depth=(request.scroll_depth if request.HasField("scroll_depth") else None),
                engagement_score=(
                    request.engagement_score if request.HasField("engagement_score") else None
                ),
                device_type=request.device_type,
                referrer_url=request.referrer_url,
                level=request.level,
                from_level=request.from_level,
                to_level=request.to_level,
            )
        )
        access = await self._access.authorize(
            request.session_id, request.article_id, request.access_token
        )
        async with unit_of_work(self._sessions) as db:
            entry = await service.record_progress(db, access, checked)
        return progress_to_proto(entry)

    async def GetAnalytics(
        self, request: feedback_pb2.GetAnalyticsRequest, context: Context
    ) -> feedback_pb2.SessionAnalytics:
        access = await self._access.authorize(request.session_id, "", request.access_token)
        async with unit_of_work(self._sessions) as db:
            view = await service.session_analytics(db, access)
        return analytics_to_proto(view)
