"""session use cases: creating a session, access to it, and reading it. Each runs inside the
caller's transaction (one RPC). Conversion lives in conversion.py, generation results,
settlement and retry in results.py."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs import limits, subjects
from infou_libs.errors import Gone, InvalidArgument, NotFound, Unauthenticated
from infou_libs.levels import LEVELS
from infou_libs.logging import get_logger
from infou_libs.outbox import add_events
from infou_libs.protobuf import timestamp as _timestamp
from infou_protos.events.v1 import events_pb2
from infou_session import jobs, progress, repository, tokens
from infou_session.models import ArticleVariant, GeneratedArticle, LearningSession, outbox
from infou_session.progress import ProgressMessage
from infou_session.settings import SessionSettings
from infou_session.topics import SUB_TOPIC_TYPES, Selection, SubTopicRef, public_ref
from infou_session.workflow import ArticleStatus, Status

log = get_logger(__name__)

ARTICLE_LENGTHS = ("short", "medium", "long")
# Articles a learner reads per week at each pace (for estimated_total_time).
ARTICLES_PER_WEEK = {"slow": 2, "relaxed": 3, "regular": 4, "fast": 6, "intensive": 7}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ── creating a session ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class NewSession:
    """A POST /sessions request, as the gateway passed it on."""

    main_topic_id: int
    sub_topics: Sequence[SubTopicRef]
    level: str
    personalization: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Created:
    session: LearningSession
    token: str
    estimated_total_time: str
    estimated_articles: int
    messages: list[ProgressMessage]


def check_request(request: NewSession, settings: SessionSettings) -> NewSession:
    """Bad input named by field, before any other service is asked; returns it normalised."""
    if request.main_topic_id <= 0:
        raise InvalidArgument("main_topic_id must be a positive id", field="main_topic_id")
    if request.level not in LEVELS:
        raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}", field="level")
    if not request.sub_topics:
        raise InvalidArgument("select at least one sub-topic", field="sub_topic_ids")
    if len(request.sub_topics) > settings.max_sub_topics_per_session:
        raise InvalidArgument(
            f"at most {settings.max_sub_topics_per_session} sub-topics", field="sub_topic_ids"
        )
    seen: set[str] = set()
    for i, ref in enumerate(request.sub_topics):
        if ref.type not in SUB_TOPIC_TYPES or not (
            ref.key if ref.type == "generated" else ref.id > 0
        ):
            raise InvalidArgument(
                "a sub-topic id is curated_<n> or generated_<id>", field=f"sub_topic_ids.{i}"
            )
        if ref.public_id in seen:
            raise InvalidArgument(f"{ref.public_id} is selected twice", field=f"sub_topic_ids.{i}")
        seen.add(ref.public_id)
    p = dict(request.personalization)
    pace = str(p.get("learning_pace") or "regular")
    if pace not in ARTICLES_PER_WEEK:
        raise InvalidArgument(
            f"learning_pace must be one of {', '.join(ARTICLES_PER_WEEK)}",
            field="personalization.learning_pace",
        )
    length = str(p.get("preferred_article_length") or "medium")
    if length not in ARTICLE_LENGTHS:
        raise InvalidArgument(
            f"preferred_article_length must be one of {', '.join(ARTICLE_LENGTHS)}",
            field="personalization.preferred_article_length",
        )
    interests = [str(x).strip() for x in p.get("interests") or [] if str(x).strip()]
    if len(interests) > limits.MAX_INTERESTS or any(
        len(x) > limits.MAX_INTEREST_CHARS for x in interests
    ):
        raise InvalidArgument(
            f"at most {limits.MAX_INTERESTS} interests of {limits.MAX_INTEREST_CHARS} characters",
            field="personalization.interests",
        )
    goals = str(p.get("learning_goals") or "").strip()
    if len(goals) > limits.MAX_LEARNING_GOALS_CHARS:
        raise InvalidArgument(
            f"at most {limits.MAX_LEARNING_GOALS_CHARS} characters",
            field="personalization.learning_goals",
        )
    style = str(p.get("preferred_style") or "").strip()
    if len(style) > limits.MAX_SHORT_TEXT_CHARS:
        raise InvalidArgument(
            f"at most {limits.MAX_SHORT_TEXT_CHARS} characters",
            field="personalization.preferred_style",
        )
    o = dict(request.options)
    per_sub_topic = int(
        o.get("max_articles_per_subtopic") or settings.default_articles_per_subtopic
    )
    if not 1 <= per_sub_topic <= limits.MAX_ARTICLES_PER_SUBTOPIC:
        raise InvalidArgument(
            f"max_articles_per_subtopic must be between 1 and {limits.MAX_ARTICLES_PER_SUBTOPIC}",
            field="options.max_articles_per_subtopic",
        )
    if per_sub_topic * len(request.sub_topics) > settings.max_articles_per_session:
        raise InvalidArgument(
            f"at most {settings.max_articles_per_session} articles a session: "
            f"{len(request.sub_topics)} sub-topics × {per_sub_topic} is too many",
            field="options.max_articles_per_subtopic",
        )
    return NewSession(
        main_topic_id=request.main_topic_id,
        sub_topics=list(request.sub_topics),
        level=request.level,
        personalization={
            "learning_pace": pace,
            "preferred_article_length": length,
            "include_examples": bool(p.get("include_examples", True)),
            "interests": interests,
            "learning_goals": goals,
            "preferred_style": style,
        },
        options={
            "max_articles_per_subtopic": per_sub_topic,
            "enable_adaptive_difficulty": bool(o.get("enable_adaptive_difficulty", False)),
            "include_practice_problems": bool(o.get("include_practice_problems", False)),
        },
    )


def learner_text(personalization: dict[str, Any]) -> dict[str, str]:
    """The free text of checked personalization, by its public field: generation's admission
    moderates it before anything is held or stored."""
    texts = {
        f"personalization.{key}": str(personalization.get(key) or "")
        for key in ("learning_goals", "preferred_style")
    }
    for i, interest in enumerate(personalization.get("interests") or []):
        texts[f"personalization.interests.{i}"] = str(interest)
    return texts


def estimated_study_time(articles: int, pace: str) -> str:
    """How long the curriculum takes a learner at this pace, as the PRD writes it ('3-4주')."""
    weeks = articles / ARTICLES_PER_WEEK.get(pace, ARTICLES_PER_WEEK["regular"])
    if weeks <= 1:
        return "1주"
    low, high = math.floor(weeks), math.ceil(weeks)
    return f"{low}주" if low == high else f"{low}-{high}주"


def new_session_id() -> str:
    return f"sess_{uuid.uuid4().hex}"


async def create_session(
    db: AsyncSession,
    request: NewSession,
    selection: Selection,
    settings: SessionSettings,
    *,
    session_id: str | None = None,
    token: str | None = None,
    estimated_cost_usd: Decimal | None = None,
) -> Created:
    """Stores the session `initializing` with SessionCreated and its curriculum job.

    `estimated_cost_usd` is what admission held for it (else the settings' per-call figures).
    The row is written once, complete (its first progress message numbered), in the one
    statement that also writes both events: atomic without a transaction (creation.py).
    """
    now = _now()
    session_id = session_id or new_session_id()
    token = token or tokens.new_token()
    per_sub_topic = int(request.options["max_articles_per_subtopic"])
    estimated_articles = per_sub_topic * len(selection.sub_topics)
    row = LearningSession(
        id=session_id,
        main_topic_id=request.main_topic_id,
        main_topic=selection.main_topic,
        selected_subtopics=selection.sub_topics,
        target_level=request.level,
        personalization_settings=request.personalization,
        generation_options=request.options,
        access_token_hash=tokens.token_hash(
            settings.session_token_secret.get_secret_value(), token
        ),
        status=Status.INITIALIZING.value,
        expires_at=now + dt.timedelta(days=settings.session_ttl_days),
        estimated_cost_usd=(
            estimated_cost_usd
            if estimated_cost_usd is not None
            else settings.estimated_cost_per_curriculum_usd
            + settings.estimated_cost_per_article_usd * estimated_articles
        ),
        total_articles=0,
        completed_articles=0,
        total_time_spent=0,
        generation_total_tokens=0,
        generation_input_tokens=0,
        generation_output_tokens=0,
        generation_cost_usd=Decimal(0),
        generation_cached_results=0,
        generation_saved_usd=Decimal(0),
        generation_duration_seconds=0,
        progress_sequence=0,
        created_at=now,
    )
    messages = progress.stamp(row, [progress.generation_progress(row, [])])
    # One statement: the row, SessionCreated and the curriculum job (atomic on its own).
    await add_events(
        db,
        outbox,
        [
            (
                subjects.SESSION_CREATED,
                events_pb2.SessionCreated(
                    session_id=session_id,
                    main_topic_id=request.main_topic_id,
                    curated_sub_topic_ids=[
                        s["id"] for s in selection.sub_topics if s["type"] == "curated"
                    ],
                    generated_sub_topic_ids=[
                        s["id"] for s in selection.sub_topics if s["type"] == "generated"
                    ],
                    level=request.level,
                    occurred_at=_timestamp(now),
                ),
            ),
            jobs.curriculum_job(row),
        ],
        along=repository.new_rows(row),
    )
    log.info("session_created", session_id=session_id, sub_topics=len(selection.sub_topics))
    return Created(
        session=row,
        token=token,
        estimated_total_time=estimated_study_time(
            estimated_articles, request.personalization["learning_pace"]
        ),
        estimated_articles=estimated_articles,
        messages=messages,
    )


# ── access ─────────────────────────────────────────────────────────────────────────────


def _check_alive(session: LearningSession, now: dt.datetime | None = None) -> None:
    if session.expires_at <= (now or _now()):
        raise Gone(
            f"this session expired at {session.expires_at.isoformat()}", code="SESSION_EXPIRED"
        )


async def _owner(db: AsyncSession, secret: str, token: str) -> LearningSession:
    """The session a token belongs to; Unauthenticated for a missing or unknown token."""
    if not token:
        raise Unauthenticated("a session access token is required")
    owner = None
    if tokens.well_formed(token):
        owner = await repository.session_by_token_hash(db, tokens.token_hash(secret, token))
    if owner is None or not tokens.matches(secret, token, owner.access_token_hash):
        raise Unauthenticated("the session access token is not valid")
    return owner


async def authorize(db: AsyncSession, secret: str, session_id: str, token: str) -> LearningSession:
    """The session, if `token` opens it: 401 without a valid token, 404 for another session's
    (so a token never tells whether some other session exists), 410 once expired."""
    owner = await _owner(db, secret, token)
    if owner.id != session_id:
        raise NotFound("no session with this id", field="session_id")
    _check_alive(owner)
    return owner


async def authorize_article(
    db: AsyncSession, secret: str, article_id: str, token: str
) -> tuple[LearningSession, GeneratedArticle]:
    """The article and its session, if `token` opens that session (as `authorize`)."""
    owner = await _owner(db, secret, token)
    article = await repository.article_by_id(db, article_id)
    if article is None or article.session_id != owner.id:
        raise NotFound("no article with this id", field="article_id")
    _check_alive(owner)
    return owner, article


# ── reading ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SessionView:
    session: LearningSession
    articles: Sequence[GeneratedArticle]

    @property
    def generated(self) -> int:
        return sum(1 for a in self.articles if a.status == ArticleStatus.READY)

    @property
    def estimated_completion_time(self) -> str:
        total = self.session.total_articles or (
            int(self.session.generation_options.get("max_articles_per_subtopic", 1))
            * len(self.session.selected_subtopics)
        )
        pace = str((self.session.personalization_settings or {}).get("learning_pace", "regular"))
        return estimated_study_time(total, pace)


async def get_session(db: AsyncSession, secret: str, session_id: str, token: str) -> SessionView:
    session = await authorize(db, secret, session_id, token)
    return SessionView(session, await repository.articles_of(db, session.id))


async def get_curriculum(db: AsyncSession, secret: str, session_id: str, token: str) -> SessionView:
    return await get_session(db, secret, session_id, token)


@dataclass(frozen=True)
class ArticleView:
    """An article at one level: the base article, or one of its variants."""

    article: GeneratedArticle
    variant: ArticleVariant | None
    available_levels: list[str]
    # The sub-topic's public id ("generated_<random>"), from the session's selection.
    sub_topic_ref: str = ""

    @property
    def level(self) -> str:
        return self.variant.level if self.variant else self.article.target_level

    @property
    def status(self) -> str:
        return self.variant.status if self.variant else self.article.status


def available_levels(article: GeneratedArticle, variants: Sequence[ArticleVariant]) -> list[str]:
    """The levels the article can be read at now, in LEVELS order."""
    levels = {article.target_level} if article.status == ArticleStatus.READY else set()
    levels |= {v.level for v in variants if v.status == ArticleStatus.READY}
    return [level for level in LEVELS if level in levels]


async def get_article(
    db: AsyncSession, secret: str, article_id: str, level: str, token: str
) -> ArticleView:
    """The article at `level` (its own when empty); its status says whether it is written."""
    if level and level not in LEVELS:
        raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}", field="level")
    session, article = await authorize_article(db, secret, article_id, token)
    variants = await repository.variants_of(db, article.id)
    available = available_levels(article, variants)
    ref = public_ref(session.selected_subtopics, article.sub_topic_type, article.sub_topic_id)
    if not level or level == article.target_level:
        return ArticleView(article, None, available, ref)
    for variant in variants:
        if variant.level == level:
            return ArticleView(article, variant, available, ref)
    raise NotFound(
        f"this article has no {level} version yet; ask for it with /convert",
        field="level",
        code="LEVEL_NOT_AVAILABLE",
    )


async def progress_snapshot(db: AsyncSession, session_id: str) -> tuple[dict[str, Any], int]:
    """The first WebSocket message of a watcher, and the last sequence it reflects."""
    session = await repository.session_by_id(db, session_id)
    if session is None:
        raise NotFound("no session with this id", field="session_id")
    articles = await repository.articles_of(db, session.id)
    return progress.snapshot(session, articles), int(session.progress_sequence or 0)


# ── statistics ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SessionStats:
    active: int
    generating: int


async def session_stats(db: AsyncSession) -> SessionStats:
    counts = await repository.count_by_status(db)
    generating = counts.get("initializing", 0) + counts.get("generating", 0)
    return SessionStats(active=repository.active(counts), generating=generating)
