"""Generation results and settlement: the consumed events of generation-service (events.py
routes them) and the retry of what failed. Each runs in the caller's transaction (one consumed
event or one RPC) with the session's row locked, and returns the progress messages to publish
once that transaction has committed. The session's status is derived from facts (workflow.py),
so results may arrive in any order and more than once.

A retry starts a new generation attempt (`LearningSession.generation_attempt` + 1) and
re-enqueues everything not ready under it, including articles whose first-run job is still in
flight. Every job carries the attempt and its result echoes it; a result of an older attempt
(a job the retry replaced) is ignored, logged (`generation_result_stale`) and counted
(`infou_session_stale_results_total`), so a first-run job can neither fail nor complete the
retried session. An event without an attempt is attempt 0 (the first run).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import FailedPrecondition
from infou_libs.logging import get_logger
from infou_protos.events.v1 import events_pb2
from infou_session import curriculum, jobs, progress, repository
from infou_session.models import GeneratedArticle, LearningSession
from infou_session.progress import ProgressMessage
from infou_session.service import SessionView, authorize
from infou_session.workflow import (
    ArticleStatus,
    Change,
    Event,
    Facts,
    Status,
    accepts,
    article_after,
    derive_status,
)

log = get_logger(__name__)

STALE_RESULTS = Counter(
    "infou_session_stale_results_total",
    "Generation results of an attempt a retry replaced, ignored, by task",
    ["task"],
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        session.generation_saved_usd = (session.generation_saved_usd or Decimal(0)) + Decimal(
            str(round(usage.saved_usd, 6))
        )
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


def _stale(
    session: LearningSession, attempt: int, task: str, article_id: str | None = None
) -> bool:
    """Whether a result belongs to an attempt a retry replaced (see the module doc)."""
    current = session.generation_attempt or 0
    if attempt >= current:
        return False
    STALE_RESULTS.labels(task).inc()
    log.info(
        "generation_result_stale",
        session_id=session.id,
        task=task,
        article_id=article_id,
        attempt=attempt,
        current_attempt=current,
    )
    return True


def _settle(
    session: LearningSession, articles: Sequence[GeneratedArticle], before: Status
) -> list[tuple[str, dict[str, Any]]]:
    """Derives the status after a change; the drafts announcing what changed with it."""
    change = Change(before, derive_status(_facts(session, articles)))
    session.status = change.after.value
    if change.completed:
        now = _now()
        session.generation_completed_at = now
        session.generation_duration_seconds = max(
            0, int((now - session.created_at).total_seconds())
        )
        session.failure_reason = None
    drafts = [progress.generation_progress(session, articles)]
    if change.completed:
        drafts.append(progress.generation_complete(session))
    return drafts


async def on_curriculum_generated(
    db: AsyncSession, event: events_pb2.CurriculumGenerated
) -> list[ProgressMessage]:
    """Stores the curriculum's articles (generating) and enqueues one job per article."""
    session = await _locked_session(db, event.session_id)
    if session is None or _stale(session, event.attempt, "curriculum"):
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
    session.curriculum_title = (event.title or "")[:300]
    session.curriculum_generated_at = _now()
    session.total_articles = len(rows)
    session.current_article_id = rows[0].id
    session.failure_reason = None
    # The articles and their jobs in one statement.
    await jobs.enqueue_articles(db, session, rows, along=repository.new_rows(*rows))
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
        "quality_report": _json_object(written.quality_report_json),
    }


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def on_article_generated(
    db: AsyncSession, event: events_pb2.ArticleGenerated
) -> list[ProgressMessage]:
    """Stores one written article; the last one makes the session ready."""
    session = await _locked_session(db, event.session_id)
    if session is None or _stale(session, event.attempt, "article", event.article_id):
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
    if _stale(session, event.attempt, event.task, event.article_id or None):
        return []
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


# ── retry ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Retried:
    view: SessionView
    messages: list[ProgressMessage]


async def retry_session(db: AsyncSession, secret: str, session_id: str, token: str) -> Retried:
    """Starts the next generation attempt: re-enqueues the curriculum when it failed, or every
    article not ready (failed ones, and ones the previous attempt is still writing)."""
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
    # The previous attempt's jobs still in flight are replaced: their results will be stale.
    session.generation_attempt = (session.generation_attempt or 0) + 1
    if not facts.curriculum_ready:
        await jobs.enqueue_curriculum(db, session)
    again = [a for a in articles if a.status != ArticleStatus.READY]
    for article in again:
        if article.status == ArticleStatus.FAILED:
            article.status = article_after(ArticleStatus.FAILED, Event.RETRY).value
            article.failure_reason = None
    await jobs.enqueue_articles(db, session, again, among=articles)
    session.status = derive_status(_facts(session, articles, curriculum_failed=False)).value
    log.info(
        "session_retried",
        session_id=session.id,
        status=session.status,
        attempt=session.generation_attempt,
        articles=len(again),
    )
    messages = progress.stamp(session, [progress.generation_progress(session, articles)])
    return Retried(SessionView(session, articles), messages)
