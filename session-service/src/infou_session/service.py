"""session use cases. Each runs inside the caller's transaction (one RPC or one consumed event)
and returns the progress messages to publish once that transaction has committed."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import FailedPrecondition, Gone, InvalidArgument, NotFound, Unauthenticated
from infou_libs.levels import LEVELS
from infou_libs.logging import get_logger
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp as _timestamp
from infou_protos.events.v1 import events_pb2
from infou_session import curriculum, generation_input, progress, repository, tokens
from infou_session.models import ArticleVariant, GeneratedArticle, LearningSession, outbox
from infou_session.progress import ProgressMessage
from infou_session.settings import SessionSettings
from infou_session.topics import SUB_TOPIC_TYPES, Selection, SubTopicRef
from infou_session.workflow import (
    ArticleStatus,
    Event,
    Facts,
    Status,
    accepts,
    article_after,
    derive_status,
)

log = get_logger(__name__)

# Subjects this service writes to its outbox.
SESSION_CREATED = "events.session.created"
CURRICULUM_JOB = "jobs.curriculum.generate"
ARTICLE_JOB = "jobs.article.generate"
CONVERT_JOB = "jobs.article.convert"

ARTICLE_LENGTHS = ("short", "medium", "long")
# Articles a learner reads per week at each pace (for estimated_total_time).
ARTICLES_PER_WEEK = {"slow": 2, "relaxed": 3, "regular": 4, "fast": 6, "intensive": 7}
MAX_ARTICLES_PER_SUBTOPIC = 20
MAX_INTERESTS = 10
MAX_SHORT_TEXT = 100
MAX_LEARNING_GOALS = 500


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
    seen: set[tuple[str, int]] = set()
    for i, ref in enumerate(request.sub_topics):
        if ref.type not in SUB_TOPIC_TYPES or ref.id <= 0:
            raise InvalidArgument(
                "a sub-topic id is curated_<n> or generated_<n>", field=f"sub_topic_ids.{i}"
            )
        if (ref.type, ref.id) in seen:
            raise InvalidArgument(f"{ref.public_id} is selected twice", field=f"sub_topic_ids.{i}")
        seen.add((ref.type, ref.id))
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
    if len(interests) > MAX_INTERESTS or any(len(x) > MAX_SHORT_TEXT for x in interests):
        raise InvalidArgument(
            f"at most {MAX_INTERESTS} interests of {MAX_SHORT_TEXT} characters",
            field="personalization.interests",
        )
    goals = str(p.get("learning_goals") or "").strip()
    if len(goals) > MAX_LEARNING_GOALS:
        raise InvalidArgument(
            f"at most {MAX_LEARNING_GOALS} characters", field="personalization.learning_goals"
        )
    style = str(p.get("preferred_style") or "").strip()
    if len(style) > MAX_SHORT_TEXT:
        raise InvalidArgument(
            f"at most {MAX_SHORT_TEXT} characters", field="personalization.preferred_style"
        )
    o = dict(request.options)
    per_sub_topic = int(
        o.get("max_articles_per_subtopic") or settings.default_articles_per_subtopic
    )
    if not 1 <= per_sub_topic <= MAX_ARTICLES_PER_SUBTOPIC:
        raise InvalidArgument(
            f"max_articles_per_subtopic must be between 1 and {MAX_ARTICLES_PER_SUBTOPIC}",
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


def estimated_study_time(articles: int, pace: str) -> str:
    """How long the curriculum takes a learner at this pace, as the PRD writes it ('3-4주')."""
    weeks = articles / ARTICLES_PER_WEEK.get(pace, ARTICLES_PER_WEEK["regular"])
    if weeks <= 1:
        return "1주"
    low, high = math.floor(weeks), math.ceil(weeks)
    return f"{low}주" if low == high else f"{low}-{high}주"


async def create_session(
    db: AsyncSession, request: NewSession, selection: Selection, settings: SessionSettings
) -> Created:
    """Stores the session `initializing` with SessionCreated and its curriculum job."""
    now = _now()
    session_id = f"sess_{uuid.uuid4().hex}"
    token = tokens.new_token()
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
            settings.estimated_cost_per_curriculum_usd
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
        generation_duration_seconds=0,
        progress_sequence=0,
        created_at=now,
    )
    await repository.add(db, row)
    await add_event(
        db,
        outbox,
        SESSION_CREATED,
        events_pb2.SessionCreated(
            session_id=session_id,
            main_topic_id=request.main_topic_id,
            curated_sub_topic_ids=[s["id"] for s in selection.sub_topics if s["type"] == "curated"],
            generated_sub_topic_ids=[
                s["id"] for s in selection.sub_topics if s["type"] == "generated"
            ],
            level=request.level,
            occurred_at=_timestamp(now),
        ),
    )
    await _enqueue_curriculum(db, row)
    messages = progress.stamp(row, [progress.generation_progress(row, [])])
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


async def _enqueue_curriculum(db: AsyncSession, session: LearningSession) -> None:
    context = generation_input.curriculum_context(session)
    await add_event(
        db,
        outbox,
        CURRICULUM_JOB,
        events_pb2.GenerateCurriculumJob(
            session_id=session.id, context_json=generation_input.to_json(context)
        ),
    )


async def _enqueue_article(
    db: AsyncSession,
    session: LearningSession,
    article: GeneratedArticle,
    articles: Sequence[GeneratedArticle],
) -> None:
    order, total = _position_in_sub_topic(article, articles)
    context = generation_input.article_context(session, article, order, total)
    await add_event(
        db,
        outbox,
        ARTICLE_JOB,
        events_pb2.GenerateArticleJob(
            session_id=session.id,
            article_id=article.id,
            context_json=generation_input.to_json(context),
        ),
    )


def _position_in_sub_topic(
    article: GeneratedArticle, articles: Sequence[GeneratedArticle]
) -> tuple[int, int]:
    same = [
        a
        for a in articles
        if (a.sub_topic_type, a.sub_topic_id) == (article.sub_topic_type, article.sub_topic_id)
    ]
    same.sort(key=lambda a: a.order_num)
    return [a.id for a in same].index(article.id) + 1, len(same)


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


async def _authorize_article(
    db: AsyncSession, secret: str, article_id: str, token: str
) -> tuple[LearningSession, GeneratedArticle]:
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

    @property
    def level(self) -> str:
        return self.variant.level if self.variant else self.article.target_level

    @property
    def status(self) -> str:
        return self.variant.status if self.variant else self.article.status


def _available_levels(article: GeneratedArticle, variants: Sequence[ArticleVariant]) -> list[str]:
    levels = {article.target_level} if article.status == ArticleStatus.READY else set()
    levels |= {v.level for v in variants if v.status == ArticleStatus.READY}
    return [level for level in LEVELS if level in levels]


async def get_article(
    db: AsyncSession, secret: str, article_id: str, level: str, token: str
) -> ArticleView:
    """The article at `level` (its own when empty); its status says whether it is written."""
    if level and level not in LEVELS:
        raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}", field="level")
    _session, article = await _authorize_article(db, secret, article_id, token)
    variants = await repository.variants_of(db, article.id)
    available = _available_levels(article, variants)
    if not level or level == article.target_level:
        return ArticleView(article, None, available)
    for variant in variants:
        if variant.level == level:
            return ArticleView(article, variant, available)
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


# ── conversion and retry ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Conversion:
    status: str  # ready | processing
    task_id: str
    view: ArticleView | None


async def convert_article(
    db: AsyncSession, secret: str, article_id: str, target_level: str, token: str
) -> Conversion:
    """A ready variant at once, or a conversion job (its own, higher-priority queue)."""
    if target_level not in LEVELS:
        raise InvalidArgument(
            f"target_level must be one of {', '.join(LEVELS)}", field="target_level"
        )
    session, article = await _authorize_article(db, secret, article_id, token)
    if article.status != ArticleStatus.READY:
        raise FailedPrecondition(
            "this article is not written yet; convert it once it is ready",
            field="article_id",
            code="ARTICLE_NOT_READY",
        )
    if target_level == article.target_level:
        variants = await repository.variants_of(db, article.id)
        return Conversion(
            "ready", "", ArticleView(article, None, _available_levels(article, variants))
        )
    variant = await repository.variant(db, article.id, target_level, for_update=True)
    if variant is None:
        task_id = f"conv_{uuid.uuid4().hex}"
        if await repository.claim_variant(db, article.id, target_level, task_id):
            await _enqueue_conversion(db, session, article, target_level, task_id)
            return Conversion("processing", task_id, None)
        variant = await repository.variant(db, article.id, target_level, for_update=True)
        assert variant is not None
    if variant.status == ArticleStatus.READY:
        variants = await repository.variants_of(db, article.id)
        return Conversion(
            "ready",
            variant.task_id,
            ArticleView(article, variant, _available_levels(article, variants)),
        )
    if variant.status == ArticleStatus.FAILED:
        variant.task_id = f"conv_{uuid.uuid4().hex}"
        variant.status = ArticleStatus.GENERATING.value
        variant.failure_reason = None
        await _enqueue_conversion(db, session, article, target_level, variant.task_id)
    return Conversion("processing", variant.task_id, None)


async def _enqueue_conversion(
    db: AsyncSession,
    session: LearningSession,
    article: GeneratedArticle,
    target_level: str,
    task_id: str,
) -> None:
    articles = await repository.articles_of(db, session.id)
    order, total = _position_in_sub_topic(article, articles)
    context = generation_input.conversion_context(session, article, order, total, target_level)
    await add_event(
        db,
        outbox,
        CONVERT_JOB,
        events_pb2.ConvertArticleJob(
            session_id=session.id,
            article_id=article.id,
            target_level=target_level,
            task_id=task_id,
            context_json=generation_input.to_json(context),
        ),
    )


@dataclass(frozen=True)
class Retried:
    view: SessionView
    messages: list[ProgressMessage]


async def retry_session(db: AsyncSession, secret: str, session_id: str, token: str) -> Retried:
    """Re-enqueues what failed: the curriculum, or every failed article."""
    await authorize(db, secret, session_id, token)
    session = await repository.session_by_id(db, session_id, for_update=True)
    assert session is not None
    articles = await repository.articles_of(db, session.id)
    facts = _facts(session, articles)
    if not accepts(facts, Event.RETRY):
        raise FailedPrecondition(
            f"only a failed session can be retried; this one is {session.status}",
            field="session_id",
            code="NOT_RETRYABLE",
        )
    session.failure_reason = None
    if not facts.curriculum_ready:
        await _enqueue_curriculum(db, session)
    for article in articles:
        if article.status == ArticleStatus.FAILED:
            article.status = article_after(ArticleStatus.FAILED, Event.RETRY).value
            article.failure_reason = None
            await _enqueue_article(db, session, article, articles)
    session.status = derive_status(_facts(session, articles, curriculum_failed=False)).value
    log.info("session_retried", session_id=session.id, status=session.status)
    messages = progress.stamp(session, [progress.generation_progress(session, articles)])
    return Retried(SessionView(session, articles), messages)


# ── generation results (consumed events) ───────────────────────────────────────────────


def _facts(
    session: LearningSession,
    articles: Sequence[GeneratedArticle],
    *,
    curriculum_failed: bool | None = None,
) -> Facts:
    ready = session.curriculum_generated_at is not None
    if curriculum_failed is None:
        curriculum_failed = not ready and session.status == Status.FAILED
    return Facts(
        curriculum_ready=ready,
        curriculum_failed=curriculum_failed,
        total=len(articles),
        ready=sum(1 for a in articles if a.status == ArticleStatus.READY),
        failed=sum(1 for a in articles if a.status == ArticleStatus.FAILED),
    )


def _add_usage(session: LearningSession, usage: events_pb2.GenerationUsage) -> None:
    session.generation_input_tokens = (session.generation_input_tokens or 0) + usage.input_tokens
    session.generation_output_tokens = (session.generation_output_tokens or 0) + usage.output_tokens
    session.generation_total_tokens = (session.generation_total_tokens or 0) + int(
        usage.input_tokens + usage.output_tokens
    )
    session.generation_cost_usd = (session.generation_cost_usd or Decimal(0)) + Decimal(
        str(round(usage.cost_usd, 6))
    )
    if usage.cache_hit:
        session.generation_cached_results = (session.generation_cached_results or 0) + 1
    models = [m for m in (session.generation_llm_model or "").split(", ") if m]
    if usage.model and usage.model not in models and len(models) < 4:
        session.generation_llm_model = ", ".join([*models, usage.model])[:200]


async def _locked_session(db: AsyncSession, session_id: str) -> LearningSession | None:
    """The session row, locked: one session's results are applied one at a time."""
    session = await repository.session_by_id(db, session_id, for_update=True)
    if session is None:
        log.warning("result_for_unknown_session", session_id=session_id)
        return None
    if session.expires_at <= _now():
        log.info("result_for_expired_session", session_id=session_id)
        return None
    return session


def _settle(
    session: LearningSession, articles: Sequence[GeneratedArticle], before: Status
) -> list[tuple[str, dict[str, Any]]]:
    """Derives the status after a change; the drafts announcing what changed with it."""
    after = derive_status(_facts(session, articles))
    session.status = after.value
    drafts = []
    if after is Status.READY and before is not Status.READY:
        now = _now()
        session.generation_completed_at = now
        session.generation_duration_seconds = max(
            0, int((now - session.created_at).total_seconds())
        )
        session.failure_reason = None
    drafts.append(progress.generation_progress(session, articles))
    if after is Status.READY and before is not Status.READY:
        drafts.append(progress.generation_complete(session))
    return drafts


async def on_curriculum_generated(
    db: AsyncSession, event: events_pb2.CurriculumGenerated
) -> list[ProgressMessage]:
    """Stores the curriculum's articles (generating) and enqueues one job per article."""
    session = await _locked_session(db, event.session_id)
    if session is None:
        return []
    articles = await repository.articles_of(db, session.id)
    if not accepts(_facts(session, articles), Event.CURRICULUM_GENERATED):
        return []
    before = Status(session.status)
    _add_usage(session, event.usage)
    refs = [s["ref"] for s in session.selected_subtopics]
    planned = curriculum.normalise(
        [
            curriculum.PlannedItem(
                title=item.title,
                summary=item.summary,
                sub_topic_ref=item.sub_topic_ref,
                estimated_read_time=item.estimated_read_time,
                key_concepts=tuple(item.key_concepts),
                difficulty_indicators=tuple(item.difficulty_indicators),
                prerequisite_titles=tuple(item.prerequisite_titles),
            )
            for item in event.items
        ],
        refs,
        int(session.generation_options.get("max_articles_per_subtopic", 1)),
    )
    if not planned:
        session.status = Status.FAILED.value
        session.failure_reason = "the curriculum had no article for the selected sub-topics"
        return progress.stamp(
            session,
            [
                progress.error(session.id, progress.GENERATION_FAILED, session.failure_reason),
                progress.generation_progress(session, []),
            ],
        )
    subs = {s["ref"]: s for s in session.selected_subtopics}
    rows = []
    for plan in curriculum.lay_out(session.id, planned):
        sub = subs[plan.item.sub_topic_ref]
        rows.append(
            GeneratedArticle(
                id=plan.id,
                session_id=session.id,
                order_num=plan.order,
                title=plan.item.title[:300],
                summary=plan.item.summary,
                planned_read_time=plan.item.estimated_read_time[:20] or None,
                next_article_id=plan.next_id,
                previous_article_id=plan.previous_id,
                sub_topic_type=sub["type"],
                sub_topic_id=int(sub["id"]),
                sub_topic_name=str(sub["name"])[:200],
                sub_topic_slug=str(sub["slug"])[:100],
                target_level=session.target_level,
                key_concepts=list(plan.item.key_concepts),
                difficulty_indicators=list(plan.item.difficulty_indicators),
                prerequisites=list(plan.prerequisites),
                code_examples_count=0,
                practical_tips=[],
                related_concepts=[],
                content_warnings=[],
                generation_tokens_used=0,
                generation_cost_usd=Decimal(0),
                quality_score=Decimal(0),
                human_reviewed=False,
                cache_hit=False,
                status=ArticleStatus.GENERATING.value,
            )
        )
    await repository.add(db, *rows)
    session.curriculum_title = (event.title or "")[:300]
    session.curriculum_generated_at = _now()
    session.total_articles = len(rows)
    session.current_article_id = rows[0].id
    session.failure_reason = None
    for row in rows:
        await _enqueue_article(db, session, row, rows)
    log.info("curriculum_stored", session_id=session.id, articles=len(rows))
    return progress.stamp(session, _settle(session, rows, before))


def _written_fields(written: events_pb2.WrittenArticle) -> dict[str, Any]:
    try:
        body = json.loads(written.article_json) if written.article_json else None
    except ValueError:
        body = None
    key_terms = [
        {"term": str(t.get("term", "")), "definition": str(t.get("definition", ""))}
        for t in (body or {}).get("key_terms", [])
        if isinstance(t, dict)
    ] or [{"term": t, "definition": ""} for t in written.key_terms]
    return {
        "content": written.content,
        "word_count": written.word_count,
        "estimated_read_time": written.estimated_read_time[:20] or None,
        "key_terms": key_terms,
        "code_examples_count": written.code_examples,
        "practical_tips": list(written.practical_tips),
        "related_concepts": list(written.related_concepts),
        "body": body,
        "quality_score": Decimal(str(round(min(max(written.quality_score, 0.0), 1.0), 2))),
        "content_warnings": list(written.quality_warnings),
    }


async def on_article_generated(
    db: AsyncSession, event: events_pb2.ArticleGenerated
) -> list[ProgressMessage]:
    """Stores one written article; the last one makes the session ready."""
    session = await _locked_session(db, event.session_id)
    if session is None:
        return []
    articles = await repository.articles_of(db, session.id)
    article = next((a for a in articles if a.id == event.article_id), None)
    if article is None:
        log.warning("result_for_unknown_article", article_id=event.article_id)
        return []
    # A late success also heals an article that was given up on.
    if article.status == ArticleStatus.READY:
        return []
    before = Status(session.status)
    for name, value in _written_fields(event.article).items():
        setattr(article, name, value)
    usage = event.usage
    article.status = ArticleStatus.READY.value
    article.failure_reason = None
    article.llm_model = usage.model[:100] or None
    article.generation_prompt = usage.prompt_excerpt
    article.generation_tokens_used = int(usage.input_tokens + usage.output_tokens)
    article.generation_cost_usd = Decimal(str(round(usage.cost_usd, 6)))
    article.cache_hit = usage.cache_hit
    article.generated_at = (
        event.occurred_at.ToDatetime(tzinfo=dt.UTC) if event.occurred_at.seconds else _now()
    )
    _add_usage(session, usage)
    if session.failure_reason and not any(a.status == ArticleStatus.FAILED for a in articles):
        session.failure_reason = None
    drafts = [progress.article_ready(article), *_settle(session, articles, before)]
    return progress.stamp(session, drafts)


async def on_article_converted(
    db: AsyncSession, event: events_pb2.ArticleConverted
) -> list[ProgressMessage]:
    """Stores a level variant and tells the watchers it is there."""
    session = await _locked_session(db, event.session_id)
    if session is None:
        return []
    variant = await repository.variant_by_task(db, event.task_id)
    if variant is None or variant.status == ArticleStatus.READY:
        return []
    fields = _written_fields(event.article)
    for name, value in fields.items():
        setattr(variant, name, value)
    usage = event.usage
    variant.title = (event.article.title or None) and event.article.title[:300]
    variant.summary = event.article.summary or None
    variant.status = ArticleStatus.READY.value
    variant.failure_reason = None
    variant.llm_model = usage.model[:100] or None
    variant.generation_prompt = usage.prompt_excerpt
    variant.generation_tokens_used = int(usage.input_tokens + usage.output_tokens)
    variant.generation_cost_usd = Decimal(str(round(usage.cost_usd, 6)))
    variant.cache_hit = usage.cache_hit
    variant.generated_at = _now()
    _add_usage(session, usage)
    return progress.stamp(
        session,
        [
            progress.conversion_complete(
                session.id, variant.article_id, variant.level, variant.task_id, "ready"
            )
        ],
    )


async def on_generation_failed(
    db: AsyncSession, event: events_pb2.GenerationFailed
) -> list[ProgressMessage]:
    """A task gave up: the curriculum, one article, or one conversion is marked failed."""
    session = await _locked_session(db, event.session_id)
    if session is None:
        return []
    code = event.error_code or progress.GENERATION_FAILED
    message = (event.message or "generation failed")[:400]
    if event.task == "level_conversion":
        variant = await repository.variant_by_task(db, event.task_id)
        if variant is None or variant.status != ArticleStatus.GENERATING:
            return []
        variant.status = ArticleStatus.FAILED.value
        variant.failure_reason = message
        return progress.stamp(
            session,
            [
                progress.error(
                    session.id,
                    code,
                    message,
                    article_id=variant.article_id,
                    task_id=variant.task_id,
                ),
                progress.conversion_complete(
                    session.id, variant.article_id, variant.level, variant.task_id, "failed"
                ),
            ],
        )
    articles = await repository.articles_of(db, session.id)
    facts = _facts(session, articles)
    before = Status(session.status)
    if event.task == "curriculum":
        if not accepts(facts, Event.CURRICULUM_FAILED):
            return []
        session.status = Status.FAILED.value
        session.failure_reason = f"curriculum: {message}"[:500]
        return progress.stamp(
            session,
            [
                progress.error(session.id, code, message),
                progress.generation_progress(session, articles),
            ],
        )
    article = next((a for a in articles if a.id == event.article_id), None)
    if article is None or ArticleStatus(article.status) is not ArticleStatus.GENERATING:
        return []
    article.status = article_after(ArticleStatus(article.status), Event.ARTICLE_FAILED).value
    article.failure_reason = message
    session.failure_reason = f"article {article.order_num} ({article.title}): {message}"[:500]
    drafts = [progress.error(session.id, code, message, article_id=article.id)]
    drafts += _settle(session, articles, before)
    log.warning("article_failed", session_id=session.id, article_id=article.id, error_code=code)
    return progress.stamp(session, drafts)


# ── statistics ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SessionStats:
    active: int
    generating: int


async def session_stats(db: AsyncSession) -> SessionStats:
    counts = await repository.count_by_status(db)
    generating = counts.get("initializing", 0) + counts.get("generating", 0)
    return SessionStats(active=repository.active(counts), generating=generating)
