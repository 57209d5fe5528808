"""The use cases on a real database: a scripted learner's analytics to the number, replaced
ratings, the events each change writes, and adaptive difficulty with and without the option."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_feedback import repository, service
from infou_feedback.models import TrackedSession
from infou_feedback.service import AdaptiveRule, FeedbackInput, ProgressInput, Submitted
from infou_feedback.session_access import Access
from infou_libs import subjects
from infou_libs.errors import InvalidArgument
from infou_protos.events.v1 import events_pb2

Sessions = async_sessionmaker[AsyncSession]
OutboxEvents = Callable[..., Awaitable[list[Any]]]
RULE = AdaptiveRule(window=3, threshold=2)
START = dt.datetime(2031, 1, 10, 9, tzinfo=dt.UTC)


class Script:
    """Drives the use cases as the gateway would, one transaction each, a minute apart."""

    def __init__(self, sessions: Sessions, make: Callable[..., Access], **session: Any) -> None:
        self.sessions = sessions
        self.make = make
        self.session = session
        self.clock = START

    def _tick(self) -> dt.datetime:
        self.clock += dt.timedelta(minutes=1)
        return self.clock

    def article(self, n: int) -> str:
        return f"{self.session.get('session_id', 'sess_test')}_{n:03d}"

    async def progress(self, n: int, action: str, seconds: int = 0, **extra: Any) -> None:
        who = self.make(article_id=self.article(n), **self.session)
        checked = service.check_progress(
            ProgressInput(
                session_id=who.session_id,
                article_id=who.article_id,
                action=action,
                time_spent=seconds,
                **extra,
            )
        )
        async with self.sessions() as db, db.begin():
            await service.record_progress(db, who, checked, now=self._tick())

    async def feedback(self, n: int, rating: str, difficulty: str = "", **extra: Any) -> Submitted:
        who = self.make(article_id=self.article(n), **self.session)
        checked = service.check_feedback(
            FeedbackInput(
                article_id=who.article_id,
                session_id=who.session_id,
                rating=rating,
                difficulty_perceived=difficulty,
                **extra,
            ),
            1000,
        )
        async with self.sessions() as db, db.begin():
            return await service.submit_feedback(db, who, checked, RULE, now=self._tick())

    async def analytics(self) -> service.AnalyticsView:
        async with self.sessions() as db, db.begin():
            return await service.session_analytics(db, self.make(**self.session))

    async def tracked(self) -> TrackedSession:
        async with self.sessions() as db:
            row = await db.get(TrackedSession, self.make(**self.session).session_id)
            assert row is not None
            return row


async def test_a_scripted_learners_analytics(
    sessions: Sessions, access: Callable[..., Access], outbox_events: OutboxEvents
) -> None:
    words = {f"sess_test_{n:03d}": w for n, w in enumerate((400, 600, 800, 1000), start=1)}
    s = Script(sessions, access, articles=4, word_counts=words)
    assert (await s.analytics()).analytics.completion_rate == 0  # nothing recorded yet

    await s.progress(1, "started")
    await s.progress(1, "completed", 300, scroll_depth=0.9, engagement_score=0.8)
    await s.feedback(1, "like", "appropriate")
    await s.progress(2, "started", 60)
    await s.progress(2, "completed", 240, engagement_score=0.6)
    await s.feedback(2, "dislike", "too_hard", comments="예제가 더 있으면 좋겠어요")
    changed = await s.feedback(2, "like", "too_hard")  # the learner changed their mind
    await s.progress(3, "started", 100, level="beginner")
    await s.progress(3, "skipped")
    await s.progress(3, "level_switched", to_level="beginner")
    await s.progress(3, "completed", 0)  # completing twice counts once
    await s.progress(3, "completed", 0)

    a = (await s.analytics()).analytics
    assert a.completion_rate == Decimal("0.75")  # 3 of 4 articles
    assert a.completed_articles == 3
    assert a.total_time_spent == 700
    assert a.avg_time_per_article == 233  # 700 s over 3 articles read
    assert a.total_engagement_score == Decimal("0.70")  # mean of 0.8 and 0.6
    assert (a.positive_feedback_count, a.negative_feedback_count) == (2, 0)
    assert a.feedback_count == 2
    assert a.avg_difficulty_rating == Decimal("2.5")  # appropriate (2) and too_hard (3)
    assert a.level_switches_count == 1
    # 5 entries at intermediate (a3 skipped before the switch), 1 at beginner before it,
    # 2 at beginner after it: intermediate still leads.
    assert a.most_used_level == "intermediate"
    assert a.preferred_article_length == 500  # the liked articles: 400 and 600 words

    # The replaced rating is one row that knows what it replaced and what the learner read.
    assert changed.previous_rating == "dislike"
    assert changed.feedback.rating == "like"
    assert changed.feedback.comments is None  # the new submission has none
    assert changed.feedback.time_spent_reading == 300
    assert changed.feedback.user_level_at_time == "intermediate"
    async with sessions() as db:
        assert (await repository.feedback_of(db, "sess_test", s.article(2))) is not None
        totals = await repository.feedback_totals(db, "sess_test")
    assert totals.count == 2
    assert (await s.tracked()).current_level == "beginner"

    completion = await outbox_events(
        sessions, subjects.SESSION_ANALYTICS_UPDATED, events_pb2.SessionAnalyticsUpdated
    )
    assert [e.completion_rate for e in completion] == [0.0, 0.25, 0.5, 0.75]
    assert {e.main_topic_id for e in completion} == {1}
    progress = await outbox_events(
        sessions, subjects.PROGRESS_RECORDED, events_pb2.ProgressRecorded
    )
    assert len(progress) == 9
    assert (progress[-1].completed_articles, progress[-1].total_time_spent) == (3, 700)
    assert progress[-1].total_articles == 4
    assert [p.action for p in progress][:2] == ["started", "completed"]
    submitted = await outbox_events(
        sessions, subjects.FEEDBACK_SUBMITTED, events_pb2.FeedbackSubmitted
    )
    assert [(e.article_id, e.rating, e.previous_rating) for e in submitted] == [
        (s.article(1), "like", ""),
        (s.article(2), "dislike", ""),
        (s.article(2), "like", "dislike"),
    ]
    assert all(e.curated_sub_topic_id == 1 and e.generated_sub_topic_id == 0 for e in submitted)
    assert all(e.occurred_at.seconds > 0 for e in submitted)


async def test_generated_sub_topics_are_named_for_generation(
    sessions: Sessions, access: Callable[..., Access], outbox_events: OutboxEvents
) -> None:
    s = Script(sessions, access, sub_topic=("generated", 42))
    await s.feedback(1, "dislike")
    [event] = await outbox_events(
        sessions, subjects.FEEDBACK_SUBMITTED, events_pb2.FeedbackSubmitted
    )
    assert (event.curated_sub_topic_id, event.generated_sub_topic_id) == (0, 42)


async def test_analytics_follow_the_curriculum_as_it_grows(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    s = Script(sessions, access, articles=2)
    await s.progress(1, "completed", 10)
    assert (await s.analytics()).analytics.completion_rate == Decimal("0.50")
    s.session["articles"] = 4
    view = await s.analytics()
    assert view.analytics.completion_rate == Decimal("0.25")
    assert view.session.total_articles == 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rating": "love"}, "rating"),
        ({"rating": ""}, "rating"),
        ({"feedback_types": ("clarity", "vibes")}, "feedback_type.1"),
        ({"difficulty_perceived": "impossible"}, "difficulty_perceived"),
        ({"comments": "가" * 1001}, "comments"),
        ({"session_id": " "}, "session_id"),
        ({"article_id": ""}, "article_id"),
        ({"article_id": "a" * 81}, "article_id"),
    ],
)
def test_feedback_validation_names_the_field(change: dict[str, Any], field: str) -> None:
    request = {"article_id": "sess_x_001", "session_id": "sess_x", "rating": "like", **change}
    with pytest.raises(InvalidArgument) as caught:
        service.check_feedback(FeedbackInput(**request), 1000)
    assert caught.value.field == field


def test_feedback_is_normalised() -> None:
    checked = service.check_feedback(
        FeedbackInput(
            article_id="sess_x_001",
            session_id="sess_x",
            rating="like",
            feedback_types=("clarity", "clarity", "accuracy"),
            comments="  " + "가" * 1000 + "\n",
        ),
        1000,
    )
    assert checked.feedback_types == ("clarity", "accuracy")
    assert checked.comments == "가" * 1000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action": "finished"}, "action"),
        ({"time_spent": -1}, "time_spent"),
        ({"time_spent": 86401}, "time_spent"),
        ({"scroll_depth": 1.01}, "scroll_depth"),
        ({"scroll_depth": -0.1}, "scroll_depth"),
        ({"scroll_depth": float("nan")}, "scroll_depth"),
        ({"engagement_score": 2.0}, "engagement_score"),
        ({"device_type": "x" * 21}, "device_type"),
        ({"referrer_url": "javascript:alert(1)"}, "referrer_url"),
        ({"referrer_url": "https://e.com/" + "a" * 2048}, "referrer_url"),
        ({"level": "wizard"}, "level"),
        ({"action": "level_switched"}, "to_level"),
        ({"action": "level_switched", "to_level": "guru"}, "to_level"),
        (
            {"action": "level_switched", "from_level": "beginner", "to_level": "beginner"},
            "to_level",
        ),
        ({"to_level": "beginner"}, "to_level"),
        ({"from_level": "beginner"}, "from_level"),
        ({"article_id": ""}, "article_id"),
    ],
)
def test_progress_validation_names_the_field(change: dict[str, Any], field: str) -> None:
    request = {"session_id": "sess_x", "article_id": "sess_x_001", "action": "started", **change}
    with pytest.raises(InvalidArgument) as caught:
        service.check_progress(ProgressInput(**request))
    assert caught.value.field == field


async def test_switching_to_the_level_already_read_is_refused(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    s = Script(sessions, access, level="beginner")
    with pytest.raises(InvalidArgument) as caught:
        await s.progress(1, "level_switched", to_level="beginner")
    assert caught.value.field == "to_level"


# ── adaptive difficulty ────────────────────────────────────────────────────────────────


async def test_repeated_too_hard_moves_the_unread_articles_one_level_down(
    sessions: Sessions, access: Callable[..., Access], outbox_events: OutboxEvents
) -> None:
    s = Script(sessions, access, articles=6, adaptive=True)
    await s.progress(1, "completed", 100)
    assert (await s.feedback(1, "like", "too_hard")).adjustment is None  # once is not a pattern
    assert (await s.feedback(2, "like", "appropriate")).adjustment is None
    await s.progress(4, "skipped")
    moved = (await s.feedback(3, "dislike", "too_hard")).adjustment  # 2 of the last 3
    assert moved is not None
    assert (moved.from_level, moved.to_level, moved.direction) == (
        "intermediate",
        "beginner",
        "down",
    )
    # Rated, completed or skipped articles stay; the unread ones move, in order.
    assert moved.article_ids == [s.article(5), s.article(6)]

    [event] = await outbox_events(
        sessions, subjects.DIFFICULTY_ADJUSTED, events_pb2.DifficultyAdjusted
    )
    assert (event.from_level, event.to_level, event.reason) == (
        "intermediate",
        "beginner",
        "too_hard",
    )
    assert list(event.article_ids) == [s.article(5), s.article(6)]
    assert event.trigger_article_id == s.article(3)
    async with sessions() as db:
        switches = [r for r in await repository.logs_of(db, "sess_test") if r.to_level]
    assert [(r.action, r.from_level, r.to_level, r.article_id) for r in switches] == [
        ("level_switched", "intermediate", "beginner", s.article(3))
    ]
    view = await s.analytics()
    assert view.session.current_level == "beginner"
    assert view.analytics.level_switches_count == 1

    # The window starts afresh after a switch: the old too_hard ratings do not count again.
    assert (await s.feedback(5, "like", "too_hard")).adjustment is None
    again = (await s.feedback(6, "like", "too_hard")).adjustment
    assert again is not None
    assert (again.from_level, again.to_level, again.article_ids) == (
        "beginner",
        "absolute_beginner",
        [],
    )
    # The easiest level is as far as it goes.
    assert (await s.feedback(5, "like", "too_hard")).adjustment is None
    assert (await s.feedback(6, "like", "too_hard")).adjustment is None
    assert (await s.tracked()).current_level == "absolute_beginner"
    assert (
        len(
            await outbox_events(
                sessions, subjects.DIFFICULTY_ADJUSTED, events_pb2.DifficultyAdjusted
            )
        )
        == 2
    )


async def test_repeated_too_easy_moves_up(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    s = Script(sessions, access, articles=4, adaptive=True, level="advanced")
    await s.feedback(1, "like", "too_easy")
    moved = (await s.feedback(2, "like", "too_easy")).adjustment
    assert moved is not None
    assert (moved.to_level, moved.direction, moved.article_ids) == (
        "expert",
        "up",
        [s.article(3), s.article(4)],
    )


async def test_a_rating_given_again_counts_once(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    s = Script(sessions, access, articles=4, adaptive=True)
    assert (await s.feedback(1, "like", "too_hard")).adjustment is None
    assert (await s.feedback(1, "dislike", "too_hard")).adjustment is None  # same article
    assert (await s.feedback(2, "like", "appropriate")).adjustment is None
    assert (await s.feedback(1, "like", "appropriate")).adjustment is None  # changed its mind
    assert (await s.feedback(3, "like", "too_hard")).adjustment is None  # 1 of the last 3
    assert (await s.tracked()).current_level == "intermediate"
    assert (await s.feedback(4, "like", "too_hard")).adjustment is not None


async def test_without_the_option_nothing_moves(
    sessions: Sessions, access: Callable[..., Access], outbox_events: OutboxEvents
) -> None:
    s = Script(sessions, access, articles=4, adaptive=False)
    for n in (1, 2, 3):
        assert (await s.feedback(n, "dislike", "too_hard")).adjustment is None
    assert (
        await outbox_events(sessions, subjects.DIFFICULTY_ADJUSTED, events_pb2.DifficultyAdjusted)
        == []
    )
    view = await s.analytics()
    assert view.session.current_level == "intermediate"
    assert view.analytics.level_switches_count == 0
