"""feedback-service over gRPC beside the real session- and catalog-services: session tokens
checked by session-service, records, replaced ratings, analytics, and the events reaching the
catalog."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import pytest
from nats.aio.client import Client as NatsClient

from infou_protos.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from infou_protos.events.v1 import events_pb2
from infou_protos.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from infou_protos.session.v1 import session_pb2

# The aio channel gives the async stub, which only the .pyi declares.
Stub: TypeAlias = "feedback_pb2_grpc.FeedbackServiceAsyncStub"
RpcError = Callable[[grpc.aio.AioRpcError], tuple[grpc.StatusCode, str, str]]
Eventually = Callable[..., Awaitable[Any]]


def feedback(
    created: session_pb2.CreateSessionResponse,
    article_id: str,
    rating: str = "like",
    token: str | None = None,
    **extra: Any,
) -> feedback_pb2.SubmitFeedbackRequest:
    return feedback_pb2.SubmitFeedbackRequest(
        article_id=article_id,
        session_id=created.session_id,
        rating=rating,
        access_token=created.access_token if token is None else token,
        **extra,
    )


def progress(
    created: session_pb2.CreateSessionResponse,
    article_id: str,
    action: str,
    token: str | None = None,
    **extra: Any,
) -> feedback_pb2.RecordProgressRequest:
    return feedback_pb2.RecordProgressRequest(
        session_id=created.session_id,
        article_id=article_id,
        action=action,
        access_token=created.access_token if token is None else token,
        **extra,
    )


def analytics(created: session_pb2.CreateSessionResponse) -> feedback_pb2.GetAnalyticsRequest:
    return feedback_pb2.GetAnalyticsRequest(
        session_id=created.session_id, access_token=created.access_token
    )


async def test_a_learner_reads_rates_and_sees_the_analytics(
    feedback_stub: Stub, learner: Any
) -> None:
    created, ids, _topic, _sub = await learner.written_session(
        articles=3, word_counts=(200, 400, 600)
    )
    empty = await feedback_stub.GetAnalytics(analytics(created))
    assert (empty.completion_rate, empty.total_articles, empty.feedback_count) == (0.0, 3, 0)
    assert empty.current_level == "intermediate"

    entry = await feedback_stub.RecordProgress(
        progress(
            created,
            ids[0],
            "completed",
            time_spent=180,
            scroll_depth=0.95,
            engagement_score=0.87,
            device_type="mobile",
            referrer_url="https://example.com/from",
        )
    )
    assert entry.id > 0
    assert (entry.action, entry.time_spent, entry.level) == ("completed", 180, "intermediate")
    assert entry.scroll_depth == pytest.approx(0.95)
    assert entry.engagement_score == pytest.approx(0.87)
    assert entry.device_type == "mobile"
    assert entry.timestamp.seconds > 0

    first = await feedback_stub.SubmitFeedback(
        feedback(
            created,
            ids[0],
            "dislike",
            feedback_type=["clarity", "usefulness"],
            comments="예제가 더 있으면 좋겠어요",
            difficulty_perceived="too_hard",
        )
    )
    assert first.id > 0
    assert (first.rating, first.previous_rating) == ("dislike", "")
    assert list(first.feedback_type) == ["clarity", "usefulness"]
    assert first.comments == "예제가 더 있으면 좋겠어요"
    assert (first.time_spent_reading, first.user_level_at_time) == (180, "intermediate")
    assert first.scroll_depth == pytest.approx(0.95)

    second = await feedback_stub.SubmitFeedback(
        feedback(created, ids[0], "like", difficulty_perceived="appropriate")
    )
    assert second.id == first.id  # replaced, not added
    assert (second.rating, second.previous_rating) == ("like", "dislike")
    assert second.created_at == first.created_at
    assert second.updated_at.ToDatetime() > first.updated_at.ToDatetime()

    a = await feedback_stub.GetAnalytics(analytics(created))
    assert a.session_id == created.session_id
    assert a.completion_rate == pytest.approx(0.33)
    assert (a.completed_articles, a.total_articles, a.total_time_spent) == (1, 3, 180)
    assert a.avg_time_per_article == 180
    assert a.total_engagement_score == pytest.approx(0.87)
    assert (a.positive_feedback_count, a.negative_feedback_count, a.feedback_count) == (1, 0, 1)
    assert a.avg_difficulty_rating == pytest.approx(2.0)
    assert a.most_used_level == "intermediate"
    assert a.preferred_article_length == 200
    assert a.adaptive_difficulty is False
    assert a.last_calculated_at.seconds > 0


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("no token", grpc.StatusCode.UNAUTHENTICATED, ""),
        ("wrong token", grpc.StatusCode.UNAUTHENTICATED, ""),
        ("another session's token", grpc.StatusCode.NOT_FOUND, "session_id"),
        ("another session's article", grpc.StatusCode.NOT_FOUND, "article_id"),
        ("unknown article", grpc.StatusCode.NOT_FOUND, "article_id"),
        ("unknown session", grpc.StatusCode.NOT_FOUND, "session_id"),
        ("bad rating", grpc.StatusCode.INVALID_ARGUMENT, "rating"),
        ("bad action", grpc.StatusCode.INVALID_ARGUMENT, "action"),
        ("negative time", grpc.StatusCode.INVALID_ARGUMENT, "time_spent"),
        ("scroll beyond 1", grpc.StatusCode.INVALID_ARGUMENT, "scroll_depth"),
        ("long comments", grpc.StatusCode.INVALID_ARGUMENT, "comments"),
    ],
)
async def test_refusals_name_what_is_wrong(
    feedback_stub: Stub,
    learner: Any,
    rpc_error: RpcError,
    case: str,
    status: grpc.StatusCode,
    field: str,
) -> None:
    mine, my_ids, _t, _s = await learner.written_session(articles=1)
    other, other_ids, _t, _s = await learner.written_session(articles=1)
    wrong = "st_" + "x" * 43
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "no token": lambda: feedback_stub.SubmitFeedback(feedback(mine, my_ids[0], token="")),
        "wrong token": lambda: feedback_stub.RecordProgress(
            progress(mine, my_ids[0], "started", token=wrong)
        ),
        "another session's token": lambda: feedback_stub.GetAnalytics(
            feedback_pb2.GetAnalyticsRequest(
                session_id=mine.session_id, access_token=other.access_token
            )
        ),
        "another session's article": lambda: feedback_stub.SubmitFeedback(
            feedback(mine, other_ids[0])
        ),
        "unknown article": lambda: feedback_stub.RecordProgress(
            progress(mine, f"{mine.session_id}_404", "started")
        ),
        "unknown session": lambda: feedback_stub.RecordProgress(
            feedback_pb2.RecordProgressRequest(
                session_id="sess_unknown",
                article_id=my_ids[0],
                action="started",
                access_token=mine.access_token,
            )
        ),
        "bad rating": lambda: feedback_stub.SubmitFeedback(feedback(mine, my_ids[0], "meh")),
        "bad action": lambda: feedback_stub.RecordProgress(progress(mine, my_ids[0], "read")),
        "negative time": lambda: feedback_stub.RecordProgress(
            progress(mine, my_ids[0], "started", time_spent=-5)
        ),
        "scroll beyond 1": lambda: feedback_stub.RecordProgress(
            progress(mine, my_ids[0], "started", scroll_depth=1.5)
        ),
        "long comments": lambda: feedback_stub.SubmitFeedback(
            feedback(mine, my_ids[0], comments="x" * 1001)
        ),
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await calls[case]()
    got_status, _code, got_field = rpc_error(caught.value)
    assert (got_status, got_field) == (status, field)
    # Nothing was recorded for the refused call.
    untouched = await feedback_stub.GetAnalytics(analytics(mine))
    assert (untouched.feedback_count, untouched.total_time_spent) == (0, 0)


async def test_ratings_and_completion_reach_the_catalog(
    feedback_stub: Stub,
    learner: Any,
    catalog_stub: catalog_pb2_grpc.CatalogServiceAsyncStub,
    eventually: Eventually,
) -> None:
    # A topic of its own: the catalog's averages are over every session of the topic.
    created, ids, topic_id, sub_id = await learner.written_session(articles=2, topic_index=1)

    async def rating() -> float:
        detail = await catalog_stub.GetMainTopic(catalog_pb2.GetMainTopicRequest(id=topic_id))
        return next(s.avg_rating for s in detail.sub_topics if s.id == sub_id)

    async def completion() -> float:
        detail = await catalog_stub.GetMainTopic(catalog_pb2.GetMainTopicRequest(id=topic_id))
        return detail.topic.avg_completion_rate

    await feedback_stub.SubmitFeedback(feedback(created, ids[0], "dislike"))
    assert await eventually(rating, lambda r: r == 1.0) == 1.0
    # The learner changes their mind: the like replaces the dislike (not 3.0, their mean).
    await feedback_stub.SubmitFeedback(feedback(created, ids[0], "like"))
    assert await eventually(rating, lambda r: r == 5.0) == 5.0

    await feedback_stub.RecordProgress(progress(created, ids[0], "completed", time_spent=60))
    assert await eventually(completion, lambda r: r == 0.5) == pytest.approx(0.5)
    await feedback_stub.RecordProgress(progress(created, ids[1], "completed", time_spent=60))
    assert await eventually(completion, lambda r: r == 1.0) == pytest.approx(1.0)


async def test_events_leave_through_the_outbox(
    feedback_stub: Stub, learner: Any, nc: NatsClient, eventually: Eventually
) -> None:
    created, ids, topic_id, sub_id = await learner.written_session(articles=2, adaptive=True)
    js = nc.jetstream()
    await feedback_stub.RecordProgress(progress(created, ids[0], "completed", time_spent=90))
    await feedback_stub.SubmitFeedback(
        feedback(created, ids[0], "like", difficulty_perceived="too_easy")
    )
    moved = await feedback_stub.SubmitFeedback(
        feedback(created, ids[1], "like", difficulty_perceived="too_easy")
    )
    assert moved.user_level_at_time == "intermediate"

    async def last(subject: str, kind: Any) -> Any:
        try:
            msg = await js.get_last_msg("EVENTS", subject)
        except Exception:
            return None
        return kind.FromString(msg.data)

    recorded = await eventually(
        lambda: last("events.feedback.progress_recorded", events_pb2.ProgressRecorded),
        lambda e: e is not None and e.session_id == created.session_id,
    )
    assert (recorded.article_id, recorded.action, recorded.time_spent) == (ids[0], "completed", 90)
    assert (recorded.completed_articles, recorded.total_time_spent) == (1, 90)
    submitted = await eventually(
        lambda: last("events.feedback.submitted", events_pb2.FeedbackSubmitted),
        lambda e: e is not None and e.article_id == ids[1],
    )
    assert (submitted.main_topic_id, submitted.curated_sub_topic_id) == (topic_id, sub_id)
    adjusted = await eventually(
        lambda: last("events.feedback.difficulty_adjusted", events_pb2.DifficultyAdjusted),
        lambda e: e is not None and e.session_id == created.session_id,
    )
    assert (adjusted.from_level, adjusted.to_level, adjusted.direction) == (
        "intermediate",
        "advanced",
        "up",
    )
    assert list(adjusted.article_ids) == []  # both articles were rated
    a = await feedback_stub.GetAnalytics(analytics(created))
    assert (a.current_level, a.level_switches_count, a.adaptive_difficulty) == (
        "advanced",
        1,
        True,
    )


async def test_progress_and_adaptive_difficulty_reach_the_session(
    feedback_stub: Stub,
    session_stub: Any,
    learner: Any,
    nc: NatsClient,
    eventually: Eventually,
) -> None:
    created, ids, _topic, _sub = await learner.written_session(articles=4, adaptive=True)
    watched: list[events_pb2.SessionProgress] = []

    async def watch(msg: Any) -> None:
        watched.append(events_pb2.SessionProgress.FromString(msg.data))

    sub = await nc.subscribe(f"progress.session.{created.session_id}", cb=watch)
    get = session_pb2.GetSessionRequest(
        session_id=created.session_id, access_token=created.access_token
    )
    await feedback_stub.RecordProgress(progress(created, ids[0], "started", time_spent=20))
    await feedback_stub.RecordProgress(progress(created, ids[0], "completed", time_spent=100))
    session = await eventually(
        lambda: session_stub.GetSession(get), lambda s: s.curriculum.completed_articles == 1
    )
    assert session.progress.completion_percentage == 25.0
    assert session.progress.time_spent_seconds == 120
    assert session.progress.current_article_id == ids[1]
    assert session.progress.last_accessed.seconds > 0

    # Two of the last three say too hard: the two articles not yet read move a level down.
    await feedback_stub.SubmitFeedback(
        feedback(created, ids[0], "like", difficulty_perceived="too_hard")
    )
    await feedback_stub.SubmitFeedback(
        feedback(created, ids[1], "dislike", difficulty_perceived="too_hard")
    )
    jobs = [
        await learner._job("jobs.article.convert", events_pb2.ConvertArticleJob) for _ in range(2)
    ]
    assert sorted((j.article_id, j.target_level) for j in jobs) == [
        (ids[2], "beginner"),
        (ids[3], "beginner"),
    ]
    adjusted = await eventually(
        lambda: _async([m for m in watched if m.type == "difficulty_adjusted"]), bool
    )
    await sub.unsubscribe()
    data = json.loads(adjusted[0].data_json)
    assert (data["from_level"], data["to_level"], data["reason"]) == (
        "intermediate",
        "beginner",
        "too_hard",
    )
    assert [a["article_id"] for a in data["articles"]] == [ids[2], ids[3]]
    a = await feedback_stub.GetAnalytics(analytics(created))
    assert (a.current_level, a.level_switches_count) == ("beginner", 1)


@pytest.mark.usefixtures("nc")
async def test_without_adaptive_difficulty_nothing_is_converted(
    feedback_stub: Stub, learner: Any
) -> None:
    created, ids, _topic, _sub = await learner.written_session(articles=3, adaptive=False)
    for article_id in ids:
        await feedback_stub.SubmitFeedback(
            feedback(created, article_id, "dislike", difficulty_perceived="too_hard")
        )
    with pytest.raises(TimeoutError):
        await learner._job("jobs.article.convert", events_pb2.ConvertArticleJob, timeout=2.0)
    a = await feedback_stub.GetAnalytics(analytics(created))
    assert (a.current_level, a.level_switches_count) == ("intermediate", 0)


async def _async(value: Any) -> Any:
    return value
