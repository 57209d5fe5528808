"""FeedbackService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_feedback import service
from infou_feedback.models import SessionAnalytics
from infou_libs.errors import Unimplemented
from infou_libs.grpc_server import Context
from infou_protos.feedback.v1 import feedback_pb2, feedback_pb2_grpc


def analytics_to_proto(a: SessionAnalytics) -> feedback_pb2.SessionAnalytics:
    calculated = Timestamp()
    calculated.FromDatetime(a.last_calculated_at)
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
        last_calculated_at=calculated,
    )


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def GetAnalytics(
        self, request: feedback_pb2.GetAnalyticsRequest, context: Context
    ) -> feedback_pb2.SessionAnalytics:
        async with self._sessions() as session:
            analytics = await service.session_analytics(session, request.session_id)
        return analytics_to_proto(analytics)

    async def SubmitFeedback(
        self, request: feedback_pb2.SubmitFeedbackRequest, context: Context
    ) -> feedback_pb2.Feedback:
        raise Unimplemented("SubmitFeedback is not built yet (issue #6, feedback)")

    async def RecordProgress(
        self, request: feedback_pb2.RecordProgressRequest, context: Context
    ) -> feedback_pb2.ProgressEntry:
        raise Unimplemented("RecordProgress is not built yet (issue #6, feedback)")
