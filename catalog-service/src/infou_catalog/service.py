"""catalog use cases: reading the catalog, and keeping its statistics from others' events."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from infou_catalog import repository
from infou_catalog.models import (
    CATEGORIES,
    CuratedRating,
    CuratedSubTopic,
    Level,
    MainTopic,
    SessionCompletion,
)
from infou_libs.errors import InvalidArgument, NotFound
from infou_libs.logging import get_logger

log = get_logger(__name__)

# Anything else cannot name a row, so it is answered without a query (and never reaches the
# database, which would reject e.g. a NUL byte with an error rather than "not found").
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LEVEL_CODE = re.compile(r"[a-z_]{1,20}")
MAX_SLUG_LENGTH = 100

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_IDS = 100
MAX_ID_LENGTH = 50  # session and article ids, as stored (PRD §4.3 VARCHAR(50))

# Feedback ratings on the 1-5 scale of avg_rating (PRD §3.3 shows e.g. 4.3).
RATING_SCORES = {"like": 5, "dislike": 1}


@dataclass(frozen=True)
class TopicWithCounts:
    topic: MainTopic
    curated_count: int


@dataclass(frozen=True)
class MainTopicPage:
    items: list[TopicWithCounts]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class MainTopicWithSubTopics:
    topic: TopicWithCounts
    sub_topics: Sequence[CuratedSubTopic]


# ── reads ──────────────────────────────────────────────────────────────────────────────


async def list_levels(session: AsyncSession) -> Sequence[Level]:
    return await repository.list_levels(session)


def _is_slug(value: str) -> bool:
    return len(value) <= MAX_SLUG_LENGTH and SLUG.fullmatch(value) is not None


def _limit(limit: int) -> int:
    limit = limit or DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


async def list_main_topics(
    session: AsyncSession, *, category: str, popular: bool, limit: int, page: int
) -> MainTopicPage:
    """One page of main topics; `popular` orders by popularity_score (most popular first)."""
    if category and category not in CATEGORIES:
        raise InvalidArgument(f"unknown category; one of {', '.join(CATEGORIES)}", field="category")
    limit = _limit(limit)
    page = page or 1
    if page < 1:
        raise InvalidArgument("page must be 1 or more", field="page")
    total = await repository.count_main_topics(session, category or None)
    topics = await repository.list_main_topics(
        session,
        category=category or None,
        popular=popular,
        limit=limit,
        offset=(page - 1) * limit,
    )
    counts = await repository.curated_counts(session, (t.id for t in topics))
    return MainTopicPage(
        items=[TopicWithCounts(t, counts.get(t.id, 0)) for t in topics],
        total=total,
        page=page,
        per_page=limit,
    )


async def get_main_topic(
    session: AsyncSession, *, slug: str | None = None, topic_id: int | None = None
) -> MainTopicWithSubTopics:
    """One topic with its curated sub-topics in curated order."""
    if slug:
        topic = await repository.main_topic_by_slug(session, slug) if _is_slug(slug) else None
        field = "slug"
    elif topic_id:
        topic = await repository.main_topic_by_id(session, topic_id)
        field = "id"
    else:
        raise InvalidArgument("a main topic slug or id is required", field="slug")
    if topic is None:
        raise NotFound("no main topic with this " + field, field=field)
    subs = await repository.curated_of_topic(session, topic.id)
    return MainTopicWithSubTopics(TopicWithCounts(topic, len(subs)), subs)


async def list_curated_sub_topics(
    session: AsyncSession, *, main_slug: str, level: str, limit: int
) -> Sequence[CuratedSubTopic]:
    """A topic's curated sub-topics in curated order, only those that suit `level` if given."""
    if not main_slug:
        raise InvalidArgument("main_slug is required", field="main_slug")
    limit = _limit(limit)
    topic = await repository.main_topic_by_slug(session, main_slug) if _is_slug(main_slug) else None
    if topic is None:
        raise NotFound("no main topic with this slug", field="main_slug")
    if level and not (
        LEVEL_CODE.fullmatch(level) and await repository.level_exists(session, level)
    ):
        raise InvalidArgument("unknown level code; see GET /levels", field="level")
    return await repository.curated_of_topic(session, topic.id, level=level or None, limit=limit)


async def get_curated_sub_topics(
    session: AsyncSession, ids: Sequence[int]
) -> list[CuratedSubTopic]:
    """The curated sub-topics with these ids, in the order asked; unknown ids are left out."""
    if len(ids) > MAX_IDS:
        raise InvalidArgument(f"at most {MAX_IDS} ids", field="ids")
    found = {s.id: s for s in await repository.curated_by_ids(session, set(ids))}
    seen: set[int] = set()
    result = []
    for i in ids:
        if i in found and i not in seen:
            seen.add(i)
            result.append(found[i])
    return result


# ── statistics ─────────────────────────────────────────────────────────────────────────
#
# Each use case below runs in the transaction of one consumed event (claimed once by id, so a
# redelivered event changes nothing), locks the topics it touches, and returns the topics
# whose published numbers changed so the caller can announce them (CatalogChanged).

LEARNERS_AT_FULL = 10_000
GENERATED_AT_FULL = 1_000
RATING_PRIOR = 10
WEIGHT_LEARNERS = 0.5
WEIGHT_COMPLETION = 0.2
WEIGHT_RATING = 0.2
WEIGHT_GENERATED = 0.1


def popularity_score(
    *,
    total_learners: int,
    avg_completion_rate: float,
    rating_count: int,
    rating_total: int,
    generated_count: int,
) -> Decimal:
    """popularity_score in 0.00-1.00, from the topic's live statistics.

        popularity = 0.5·L + 0.2·C + 0.2·R + 0.1·G, rounded to 2 decimals, where
        L = min(1, ln(1 + total_learners) / ln(1 + 10 000))     demand, saturating at 10k
        C = avg_completion_rate                                  do learners finish it
        R = n / (n + 10) · (mean_rating - 1) / 4, 0 when n = 0   liked, shrunk while few ratings
        G = min(1, ln(1 + generated) / ln(1 + 1 000))            interest in personalising it
    with n the ratings over the topic's curated sub-topics and mean_rating their mean (1-5).
    Logarithms keep a few very large topics from flattening the rest; every term is 0 for a
    topic nobody has used, so a fresh catalog scores 0 everywhere (the seed's value).
    """
    learners = min(1.0, math.log1p(max(0, total_learners)) / math.log1p(LEARNERS_AT_FULL))
    completion = min(1.0, max(0.0, avg_completion_rate))
    rating = 0.0
    if rating_count > 0:
        mean = rating_total / rating_count
        rating = rating_count / (rating_count + RATING_PRIOR) * (mean - 1) / 4
    generated = min(1.0, math.log1p(max(0, generated_count)) / math.log1p(GENERATED_AT_FULL))
    score = (
        WEIGHT_LEARNERS * learners
        + WEIGHT_COMPLETION * completion
        + WEIGHT_RATING * min(1.0, max(0.0, rating))
        + WEIGHT_GENERATED * generated
    )
    return _quantize(score, "0.01")


def _quantize(value: float | Decimal, quantum: str) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(quantum), rounding=ROUND_HALF_UP)


async def _refresh_popularity(session: AsyncSession, topics: Sequence[MainTopic]) -> None:
    # The topics' changes are written with the transaction (one UPDATE per topic, after the
    # caller's announcement state is set too); the rating sums query flushes the sub-topics'.
    sums = await repository.topic_rating_sums(session, [t.id for t in topics])
    for topic in topics:
        rating_count, rating_total = sums.get(topic.id, (0, 0))
        topic.popularity_score = popularity_score(
            total_learners=topic.total_learners,
            avg_completion_rate=float(topic.avg_completion_rate),
            rating_count=rating_count,
            rating_total=rating_total,
            generated_count=topic.generated_subtopic_count,
        )


@dataclass(frozen=True)
class SessionStarted:
    """The facts of one SessionCreated event that the catalog counts."""

    main_topic_id: int
    curated_sub_topic_ids: Sequence[int]


async def record_sessions_created(
    session: AsyncSession, started: Sequence[SessionStarted]
) -> list[list[MainTopic]]:
    """Learning sessions started: one more learner per session for its topic, one more use per
    session for each curated sub-topic it names (once, however often it is listed).

    Any number of sessions take the same few statements, so a batch of events costs about what
    one does. Returns, per session, the topics its counts changed (locked, in id order).
    """
    learners = Counter(s.main_topic_id for s in started)
    uses: Counter[int] = Counter()
    for s in started:
        uses.update(set(s.curated_sub_topic_ids))
    topics = await repository.lock_topics_of(session, learners, uses)
    by_id = {t.id: t for t in topics}
    for main_topic_id, n in learners.items():
        if main_topic_id in by_id:
            by_id[main_topic_id].total_learners += n
        else:
            log.warning("stats_unknown_main_topic", main_topic_id=main_topic_id, fact="session")
    topic_of = await repository.add_usage(session, uses)
    await _refresh_popularity(session, topics)
    changed = []
    for s in started:
        ids = {s.main_topic_id} | {topic_of[c] for c in s.curated_sub_topic_ids if c in topic_of}
        changed.append([by_id[i] for i in sorted(ids) if i in by_id])
    return changed


async def record_subtopics_generated(
    session: AsyncSession, *, main_topic_id: int, count: int
) -> list[MainTopic]:
    """Personalised sub-topics were generated for the topic: subtopic_count.generated grows."""
    if count < 0:
        raise InvalidArgument("count must not be negative", field="count")
    topics = await repository.lock_topics(session, [main_topic_id])
    if not topics:
        log.warning("stats_unknown_main_topic", main_topic_id=main_topic_id, fact="generated")
        return []
    if count == 0:
        return []
    topics[0].generated_subtopic_count += count
    await _refresh_popularity(session, topics)
    return topics


def _require_id(field: str, value: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field} must be 1-{MAX_ID_LENGTH} characters", field=field)


def _is_stale(stored: dt.datetime | None, incoming: dt.datetime | None) -> bool:
    # An update older than the one stored arrived late; without timestamps, the last one wins.
    return stored is not None and incoming is not None and incoming < stored


async def _add_rating(session: AsyncSession, curated_id: int, count: int, total: int) -> None:
    sub = await repository.curated_by_id(session, curated_id)
    if sub is None:
        return
    sub.rating_count = max(0, sub.rating_count + count)
    sub.rating_total = max(0, sub.rating_total + total)
    sub.avg_rating = (
        _quantize(sub.rating_total / sub.rating_count, "0.1") if sub.rating_count else Decimal(0)
    )


async def record_rating(
    session: AsyncSession,
    *,
    session_id: str,
    article_id: str,
    curated_sub_topic_id: int,
    rating: str,
    occurred_at: dt.datetime | None,
) -> list[MainTopic]:
    """A learner rated an article of a curated sub-topic; the latest rating per article counts.

    The catalog keeps each (session, article)'s latest rating itself, so a replaced rating
    (FeedbackSubmitted.previous_rating set) moves the average instead of adding to it, even
    when the replaced rating's event was never seen here.
    """
    score = RATING_SCORES.get(rating)
    if score is None:
        raise InvalidArgument(f"unknown rating {rating!r}; like or dislike", field="rating")
    _require_id("session_id", session_id)
    _require_id("article_id", article_id)
    if curated_sub_topic_id <= 0:
        return []  # a generated sub-topic's article: not the catalog's to rate
    sub = await repository.curated_by_id(session, curated_sub_topic_id)
    if sub is None:
        log.warning("stats_unknown_curated_sub_topic", curated_sub_topic_id=curated_sub_topic_id)
        return []
    stored = await repository.get_rating(session, session_id, article_id)
    if stored is not None and _is_stale(stored.occurred_at, occurred_at):
        return []
    topic_ids = {sub.main_topic_id}
    if stored is not None and stored.curated_sub_topic_id != curated_sub_topic_id:
        topic_ids |= await repository.topic_ids_of_curated(session, [stored.curated_sub_topic_id])
    topics = await repository.lock_topics(session, topic_ids)

    if stored is None:
        session.add(
            CuratedRating(
                session_id=session_id,
                article_id=article_id,
                curated_sub_topic_id=curated_sub_topic_id,
                score=score,
                occurred_at=occurred_at,
            )
        )
    else:
        if stored.curated_sub_topic_id == curated_sub_topic_id and stored.score == score:
            stored.occurred_at = occurred_at or stored.occurred_at
            return []
        await _add_rating(session, stored.curated_sub_topic_id, -1, -stored.score)
        stored.curated_sub_topic_id = curated_sub_topic_id
        stored.score = score
        stored.occurred_at = occurred_at or stored.occurred_at
    await _add_rating(session, curated_sub_topic_id, 1, score)
    await _refresh_popularity(session, topics)
    return topics


async def record_completion(
    session: AsyncSession,
    *,
    session_id: str,
    main_topic_id: int,
    completion_rate: float,
    occurred_at: dt.datetime | None,
) -> list[MainTopic]:
    """A session's completion rate changed; the topic's avg_completion_rate follows.

    avg_completion_rate is the mean of the latest rate of every session of the topic that
    reported one, so repeated updates of one session replace its value rather than add to it.
    """
    if not 0.0 <= completion_rate <= 1.0 or math.isnan(completion_rate):
        raise InvalidArgument("completion_rate must be within 0.0-1.0", field="completion_rate")
    _require_id("session_id", session_id)
    rate = _quantize(completion_rate, "0.0001")
    stored = await repository.get_completion(session, session_id)
    if stored is not None and _is_stale(stored.occurred_at, occurred_at):
        return []
    topic_ids = {main_topic_id} | ({stored.main_topic_id} if stored else set())
    topics = await repository.lock_topics(session, topic_ids)
    by_id = {t.id: t for t in topics}
    if main_topic_id not in by_id:
        log.warning("stats_unknown_main_topic", main_topic_id=main_topic_id, fact="completion")
        return []
    if stored is not None:
        if stored.main_topic_id == main_topic_id and stored.completion_rate == rate:
            stored.occurred_at = occurred_at or stored.occurred_at
            return []
        _add_completion(by_id[stored.main_topic_id], -1, -stored.completion_rate)
        stored.main_topic_id = main_topic_id
        stored.completion_rate = rate
        stored.occurred_at = occurred_at or stored.occurred_at
    else:
        session.add(
            SessionCompletion(
                session_id=session_id,
                main_topic_id=main_topic_id,
                completion_rate=rate,
                occurred_at=occurred_at,
            )
        )
    _add_completion(by_id[main_topic_id], 1, rate)
    await _refresh_popularity(session, topics)
    return topics


def _add_completion(topic: MainTopic, count: int, total: Decimal) -> None:
    topic.completion_count = max(0, topic.completion_count + count)
    topic.completion_total = max(Decimal(0), topic.completion_total + total)
    topic.avg_completion_rate = (
        _quantize(topic.completion_total / topic.completion_count, "0.01")
        if topic.completion_count
        else Decimal(0)
    )
