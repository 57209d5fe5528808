"""feedback use cases: article feedback, learning progress, session analytics, adaptive
difficulty. Each runs inside the caller's transaction (one RPC), with the session's row in
`tracked_sessions` locked, so one session's records are applied one at a time; every event it
causes is written to the outbox in that transaction.

Analytics (session_analytics), recalculated from the logs and the feedback after every change:

- completion_rate: distinct articles with a `completed` entry / the session's articles (0..1);
- avg_time_per_article: seconds over all entries / distinct articles with a reading entry
  (any action but level_switched), rounded;
- total_engagement_score: the mean engagement_score of the entries that carry one (0..1);
- positive/negative_feedback_count: current ratings (one per article: a replaced rating counts
  once, as its latest value);
- avg_difficulty_rating: the mean perceived difficulty, too_easy = 1, appropriate = 2,
  too_hard = 3 (so 2.0 is "just right"); 0 while nobody said;
- level_switches_count: level_switched entries (the learner's and adaptive ones);
- most_used_level: the level of most reading entries, a tie going to the one used last;
- preferred_article_length: the mean word count of the liked articles, or, while none is
  liked, of the completed ones (none: null).

Adaptive difficulty (the one place that decides; session-service only carries it out): when a
session has enable_adaptive_difficulty and a feedback says too_hard (too_easy), look at the
learner's latest `adaptive_window` (3) difficulty ratings given since the last level switch (one
per article; a changed rating counts once, at its latest time). If at least
`adaptive_threshold` (2) of them, this one included, say the same, the learner moves one level
down (up), never past absolute_beginner (expert): a level_switched entry is logged, the
session's current level changes (the window starts afresh), and
events.feedback.difficulty_adjusted names the articles not yet read (no completed or skipped
entry, no feedback), which session-service converts to the new level and announces to the
session's watchers. Without the option nothing moves.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from infou_feedback import repository
from infou_feedback.models import (
    PROGRESS_ACTIONS,
    ArticleFeedback,
    LearningProgressLog,
    SessionAnalytics,
    TrackedSession,
    outbox,
)
from infou_feedback.session_access import Access
from infou_libs import subjects
from infou_libs.errors import InvalidArgument
from infou_libs.levels import LEVELS
from infou_libs.logging import get_logger
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp as _timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

RATINGS = ("like", "dislike")
FEEDBACK_TYPES = ("difficulty", "clarity", "usefulness", "accuracy")
DIFFICULTIES = ("too_easy", "appropriate", "too_hard")
DIFFICULTY_SCORES = {"too_easy": 1, "appropriate": 2, "too_hard": 3}
MAX_ID_LENGTH = 80
MAX_TIME_SPENT = 24 * 3600  # one entry: a day at most
MAX_DEVICE_TYPE = 20
MAX_REFERRER_URL = 2048


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _quantize(value: Decimal | float | None, places: str) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _check_id(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{name} is required", field=name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{name} is at most {MAX_ID_LENGTH} characters", field=name)
    return value


def _check_fraction(value: float | None, name: str) -> Decimal | None:
    if value is None:
        return None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"{name} must be between 0.0 and 1.0", field=name)
    return _quantize(value, "0.01")


def _check_level(value: str, name: str) -> str:
    if value and value not in LEVELS:
        raise InvalidArgument(f"{name} must be one of {', '.join(LEVELS)}", field=name)
    return value


# ── feedback ───────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class FeedbackInput:
    """A POST /articles/{id}/feedback request, as the gateway passed it on."""

    article_id: str
    session_id: str
    rating: str
    feedback_types: tuple[str, ...] = ()
    comments: str = ""
    difficulty_perceived: str = ""


def check_feedback(request: FeedbackInput, max_comment_length: int) -> FeedbackInput:
    """Bad input named by field, before anyone else is asked; returns it normalised."""
    article_id = _check_id(request.article_id, "article_id")
    session_id = _check_id(request.session_id, "session_id")
    if request.rating not in RATINGS:
        raise InvalidArgument(f"rating must be one of {', '.join(RATINGS)}", field="rating")
    types: list[str] = []
    for i, kind in enumerate(request.feedback_types):
        if kind not in FEEDBACK_TYPES:
            raise InvalidArgument(
                f"feedback_type must be among {', '.join(FEEDBACK_TYPES)}",
                field=f"feedback_type.{i}",
            )
        if kind not in types:
            types.append(kind)
    comments = request.comments.strip()
    if len(comments) > max_comment_length:
        raise InvalidArgument(
            f"comments are at most {max_comment_length} characters", field="comments"
        )
    if request.difficulty_perceived and request.difficulty_perceived not in DIFFICULTIES:
        raise InvalidArgument(
            f"difficulty_perceived must be one of {', '.join(DIFFICULTIES)}",
            field="difficulty_perceived",
        )
    return FeedbackInput(
        article_id=article_id,
        session_id=session_id,
        rating=request.rating,
        feedback_types=tuple(types),
        comments=comments,
        difficulty_perceived=request.difficulty_perceived,
    )


@dataclass(frozen=True)
class AdaptiveRule:
    window: int = 3
    threshold: int = 2


@dataclass(frozen=True)
class Adjustment:
    """A level switch adaptive difficulty made."""

    from_level: str
    to_level: str
    direction: str  # down | up
    reason: str  # too_hard | too_easy
    article_ids: list[str]


@dataclass(frozen=True)
class Submitted:
    feedback: ArticleFeedback
    previous_rating: str
    adjustment: Adjustment | None


async def submit_feedback(
    db: AsyncSession,
    access: Access,
    request: FeedbackInput,
    rule: AdaptiveRule,
    now: dt.datetime | None = None,
) -> Submitted:
    """Stores (or replaces) the session's feedback on the article, then adapts and recounts."""
    now = now or _now()
    tracked, _changed = await repository.track_session(db, access)
    await repository.track_article(db, access)
    reading = await repository.reading_of(db, access.session_id, access.article_id)
    row = await repository.feedback_of(db, access.session_id, access.article_id)
    previous = row.rating if row is not None else ""
    if row is None:
        row = ArticleFeedback(
            session_id=access.session_id, article_id=access.article_id, created_at=now
        )
    row.rating = request.rating
    row.feedback_types = list(request.feedback_types)
    row.comments = request.comments or None
    row.difficulty_perceived = request.difficulty_perceived or None
    row.user_level_at_time = tracked.current_level
    row.time_spent_reading = reading.time_spent
    row.scroll_depth = reading.scroll_depth
    row.updated_at = now
    await repository.add(db, row)
    adjustment = await _adapt(
        db, tracked, access.article_id, request.difficulty_perceived, rule, now
    )
    await recalculate(db, tracked, now)
    await add_event(
        db,
        outbox,
        subjects.FEEDBACK_SUBMITTED,
        events_pb2.FeedbackSubmitted(
            session_id=access.session_id,
            article_id=access.article_id,
            rating=request.rating,
            difficulty_perceived=request.difficulty_perceived,
            previous_rating=previous,
            occurred_at=_timestamp(now),
            main_topic_id=access.main_topic_id,
            curated_sub_topic_id=access.sub_topic_id if access.sub_topic_type == "curated" else 0,
            generated_sub_topic_id=(
                access.sub_topic_id if access.sub_topic_type == "generated" else 0
            ),
            level=row.user_level_at_time or "",
        ),
    )
    log.info(
        "feedback_submitted",
        session_id=access.session_id,
        article_id=access.article_id,
        rating=request.rating,
        replaced=bool(previous),
        difficulty_perceived=request.difficulty_perceived or None,
    )
    return Submitted(row, previous, adjustment)


async def _adapt(
    db: AsyncSession,
    tracked: TrackedSession,
    article_id: str,
    difficulty: str,
    rule: AdaptiveRule,
    now: dt.datetime,
) -> Adjustment | None:
    """The adaptive-difficulty rule of this module's docstring."""
    if not tracked.adaptive_difficulty or difficulty not in ("too_hard", "too_easy"):
        return None
    recent = await repository.recent_difficulty(
        db, tracked.session_id, tracked.level_changed_at, rule.window
    )
    if recent.count(difficulty) < rule.threshold or tracked.current_level not in LEVELS:
        return None
    step = -1 if difficulty == "too_hard" else 1
    position = LEVELS.index(tracked.current_level) + step
    if not 0 <= position < len(LEVELS):
        log.info(
            "difficulty_at_its_limit", session_id=tracked.session_id, level=tracked.current_level
        )
        return None
    from_level, to_level = tracked.current_level, LEVELS[position]
    await repository.add(
        db,
        LearningProgressLog(
            session_id=tracked.session_id,
            article_id=article_id,
            action="level_switched",
            level=to_level,
            from_level=from_level,
            to_level=to_level,
            time_spent_seconds=0,
            timestamp=now,
        ),
    )
    tracked.current_level = to_level
    tracked.level_changed_at = now
    done = await repository.read_article_ids(db, tracked.session_id)
    unread = [a for a in tracked.article_ids if a not in done and a != article_id]
    adjustment = Adjustment(
        from_level=from_level,
        to_level=to_level,
        direction="down" if step < 0 else "up",
        reason=difficulty,
        article_ids=unread,
    )
    await add_event(
        db,
        outbox,
        subjects.DIFFICULTY_ADJUSTED,
        events_pb2.DifficultyAdjusted(
            session_id=tracked.session_id,
            from_level=from_level,
            to_level=to_level,
            direction=adjustment.direction,
            reason=difficulty,
            article_ids=unread,
            trigger_article_id=article_id,
            occurred_at=_timestamp(now),
        ),
    )
    log.info(
        "difficulty_adjusted",
        session_id=tracked.session_id,
        from_level=from_level,
        to_level=to_level,
        articles=len(unread),
    )
    return adjustment


# ── progress ───────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ProgressInput:
    """A POST /sessions/{id}/progress request, as the gateway passed it on."""

    session_id: str
    article_id: str
    action: str
    time_spent: int = 0
    scroll_depth: float | None = None
    engagement_score: float | None = None
    device_type: str = ""
    referrer_url: str = ""
    level: str = ""
    from_level: str = ""
    to_level: str = ""


@dataclass(frozen=True)
class CheckedProgress:
    request: ProgressInput
    scroll_depth: Decimal | None = None
    engagement_score: Decimal | None = None


def check_progress(request: ProgressInput) -> CheckedProgress:
    """Bad input named by field, before anyone else is asked."""
    _check_id(request.session_id, "session_id")
    _check_id(request.article_id, "article_id")
    if request.action not in PROGRESS_ACTIONS:
        raise InvalidArgument(
            f"action must be one of {', '.join(PROGRESS_ACTIONS)}", field="action"
        )
    if not 0 <= request.time_spent <= MAX_TIME_SPENT:
        raise InvalidArgument(f"time_spent is seconds, 0 to {MAX_TIME_SPENT}", field="time_spent")
    scroll = _check_fraction(request.scroll_depth, "scroll_depth")
    engagement = _check_fraction(request.engagement_score, "engagement_score")
    if len(request.device_type) > MAX_DEVICE_TYPE:
        raise InvalidArgument(
            f"device_type is at most {MAX_DEVICE_TYPE} characters", field="device_type"
        )
    referrer = request.referrer_url.strip()
    if referrer and (
        len(referrer) > MAX_REFERRER_URL or not referrer.startswith(("http://", "https://"))
    ):
        raise InvalidArgument(
            f"referrer_url must be an http(s) URL of at most {MAX_REFERRER_URL} characters",
            field="referrer_url",
        )
    _check_level(request.level, "level")
    _check_level(request.from_level, "from_level")
    _check_level(request.to_level, "to_level")
    if request.action == "level_switched":
        if not request.to_level:
            raise InvalidArgument("level_switched needs to_level", field="to_level")
        if request.from_level == request.to_level:
            raise InvalidArgument("to_level must differ from from_level", field="to_level")
    elif request.from_level or request.to_level:
        name = "from_level" if request.from_level else "to_level"
        raise InvalidArgument(f"{name} belongs to action level_switched only", field=name)
    return CheckedProgress(request, scroll, engagement)


async def record_progress(
    db: AsyncSession, access: Access, checked: CheckedProgress, now: dt.datetime | None = None
) -> LearningProgressLog:
    """Logs one progress entry, recounts the session, and tells session-service."""
    now = now or _now()
    request = checked.request
    tracked, _changed = await repository.track_session(db, access)
    await repository.track_article(db, access)
    level = request.level or tracked.current_level
    from_level = to_level = None
    if request.action == "level_switched":
        from_level = request.from_level or tracked.current_level
        to_level = request.to_level
        if from_level == to_level:
            raise InvalidArgument("the learner already reads at this level", field="to_level")
        # The learner chose a level: it is the current one, and adaptation starts afresh.
        tracked.current_level = to_level
        tracked.level_changed_at = now
        level = to_level
    row = LearningProgressLog(
        session_id=access.session_id,
        article_id=access.article_id,
        action=request.action,
        level=level,
        from_level=from_level,
        to_level=to_level,
        time_spent_seconds=request.time_spent,
        scroll_depth=checked.scroll_depth,
        engagement_score=checked.engagement_score,
        device_type=request.device_type or None,
        referrer_url=request.referrer_url.strip() or None,
        timestamp=now,
    )
    await repository.add(db, row)
    analytics = await recalculate(db, tracked, now)
    await add_event(
        db,
        outbox,
        subjects.PROGRESS_RECORDED,
        events_pb2.ProgressRecorded(
            session_id=access.session_id,
            article_id=access.article_id,
            action=request.action,
            time_spent=request.time_spent,
            occurred_at=_timestamp(now),
            completed_articles=analytics.completed_articles,
            total_time_spent=analytics.total_time_spent,
            total_articles=tracked.total_articles,
        ),
    )
    log.info(
        "progress_recorded",
        session_id=access.session_id,
        article_id=access.article_id,
        action=request.action,
        time_spent=request.time_spent,
    )
    return row


# ── analytics ──────────────────────────────────────────────────────────────────────────


async def recalculate(
    db: AsyncSession, tracked: TrackedSession, now: dt.datetime | None = None
) -> SessionAnalytics:
    """Recounts the session's analytics (module docstring); announces a changed completion."""
    now = now or _now()
    session_id = tracked.session_id
    logs = await repository.log_totals(db, session_id)
    feedback = await repository.feedback_totals(db, session_id)
    length = await repository.avg_word_count(db, session_id, liked=True)
    if length is None:
        length = await repository.avg_word_count(db, session_id, liked=False)
    total = tracked.total_articles
    rate = min(Decimal(1), Decimal(logs.completed_articles) / total) if total > 0 else Decimal(0)
    row = await repository.get_analytics(db, session_id, for_update=True)
    before = row.completion_rate if row is not None else None
    if row is None:
        row = SessionAnalytics(session_id=session_id)
    row.completion_rate = _quantize(rate, "0.01")
    row.avg_time_per_article = (
        int(_quantize(Decimal(logs.total_time_spent) / logs.articles_with_entries, "1"))
        if logs.articles_with_entries
        else 0
    )
    row.total_engagement_score = _quantize(logs.avg_engagement, "0.01")
    row.positive_feedback_count = feedback.positive
    row.negative_feedback_count = feedback.negative
    row.avg_difficulty_rating = _quantize(feedback.avg_difficulty, "0.1")
    row.level_switches_count = logs.level_switches
    row.most_used_level = await repository.most_used_level(db, session_id)
    row.preferred_article_length = int(_quantize(length, "1")) if length is not None else None
    row.completed_articles = logs.completed_articles
    row.total_time_spent = logs.total_time_spent
    row.feedback_count = feedback.count
    row.last_calculated_at = now
    await repository.add(db, row)
    if before is None or before != row.completion_rate:
        await add_event(
            db,
            outbox,
            subjects.SESSION_ANALYTICS_UPDATED,
            events_pb2.SessionAnalyticsUpdated(
                session_id=session_id,
                main_topic_id=tracked.main_topic_id,
                completion_rate=float(row.completion_rate),
                occurred_at=_timestamp(now),
            ),
        )
    return row


@dataclass(frozen=True)
class AnalyticsView:
    analytics: SessionAnalytics
    session: TrackedSession


async def session_analytics(db: AsyncSession, access: Access) -> AnalyticsView:
    """The session's analytics: recounted when session-service's facts changed (e.g. the
    curriculum grew), zeros while the learner has recorded nothing."""
    tracked, changed = await repository.track_session(db, access)
    analytics = await repository.get_analytics(db, access.session_id)
    if analytics is None:
        empty = SessionAnalytics(
            session_id=access.session_id,
            completion_rate=Decimal(0),
            avg_time_per_article=0,
            total_engagement_score=Decimal(0),
            positive_feedback_count=0,
            negative_feedback_count=0,
            avg_difficulty_rating=Decimal(0),
            level_switches_count=0,
            completed_articles=0,
            total_time_spent=0,
            feedback_count=0,
            last_calculated_at=_now(),
        )
        return AnalyticsView(empty, tracked)
    if changed:
        analytics = await recalculate(db, tracked)
    return AnalyticsView(analytics, tracked)
