"""What the session generation jobs (curriculum, article, conversion) share.

A job carries its task's input (`context_json`, built by session-service when it enqueued the
job; content/prompts.py documents the keys), so a worker needs nothing but the message. The
result goes back as an event through this service's outbox, in one transaction with the claim
of the job's event id: a job redelivered after its result was committed (the worker died before
acking) publishes nothing twice, and a job redelivered before that regenerates from the content
cache at no cost. A job that gives up publishes `events.generation.task_failed` instead, with
the PRD error code the learner sees.
"""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy import select

from infou_generation.content.quality import article_markdown, read_time, word_count
from infou_generation.engine import Generated, OnRateLimited
from infou_generation.jobs.runner import JobContext
from infou_generation.llm.notices import rate_limit_notice
from infou_generation.llm.types import BudgetExceededError, RateLimitedError, TaskKind
from infou_generation.models import processed_events
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger
from infou_libs.messaging import PermanentError, event_id_of
from infou_libs.outbox import add_event, claim_event
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

TASK_FAILED = "events.generation.task_failed"
GENERATION_FAILED = "GENERATION_FAILED"
LLM_BUDGET_EXCEEDED = "LLM_BUDGET_EXCEEDED"
LLM_RATE_LIMIT = "LLM_RATE_LIMIT"
FAILURE_MESSAGES = {
    "curriculum": "커리큘럼 생성에 실패했습니다. 다시 시도해 주세요.",
    "article": "아티클 생성에 실패했습니다. 다시 시도해 주세요.",
    "level_conversion": "난이도 변환에 실패했습니다. 다시 요청해 주세요.",
}


def context_of(context_json: str) -> dict[str, Any]:
    """The job's prompt context; a garbled one can never succeed."""
    try:
        context = json.loads(context_json)
    except ValueError as exc:
        raise PermanentError(f"the job's context is not JSON: {exc}") from exc
    if not isinstance(context, dict):
        raise PermanentError("the job's context is not an object")
    return context


def usage_of(generated: Generated, started: float) -> events_pb2.GenerationUsage:
    return events_pb2.GenerationUsage(
        model=generated.model,
        provider=generated.provider,
        input_tokens=generated.input_tokens,
        output_tokens=generated.output_tokens,
        cost_usd=float(generated.cost_usd),
        cache_hit=generated.cache_hit,
        prompt_version=generated.prompt_version,
        prompt_excerpt=generated.prompt_excerpt,
        attempts=generated.attempts,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def written_of(generated: Generated, level: str) -> events_pb2.WrittenArticle:
    """The article as session-service stores it: markdown, counts, gate verdict, parts."""
    data = generated.data
    content = article_markdown(data)
    words = generated.quality.word_count if generated.quality else word_count(content)
    return events_pb2.WrittenArticle(
        article_json=json.dumps(data, ensure_ascii=False),
        content=content,
        word_count=words,
        estimated_read_time=read_time(words, level),
        quality_score=generated.quality.score if generated.quality else 0.0,
        quality_warnings=list(generated.quality.warnings) if generated.quality else [],
        title=str(data.get("title", "")),
        summary=str(data.get("summary", "")),
        key_terms=[str(t.get("term", "")) for t in data.get("key_terms") or [] if t.get("term")],
        code_examples=len(data.get("code_examples") or []),
        practical_tips=[str(t) for t in data.get("practical_tips") or []],
        related_concepts=[str(c) for c in data.get("related_concepts") or []],
    )


async def already_done(ctx: JobContext, consumer: str, msg: Msg) -> bool:
    """Whether this job's outcome was already committed (a redelivery after a crash)."""
    event_id = event_id_of(msg)
    if not event_id:
        return False
    async with ctx.sessions() as session:
        found = await session.scalar(
            select(processed_events.c.event_id).where(
                processed_events.c.consumer == consumer, processed_events.c.event_id == event_id
            )
        )
    return found is not None


async def publish_once(
    ctx: JobContext, consumer: str, msg: Msg, subject: str, event: Message, prefix: str
) -> bool:
    """Writes the job's outcome event unless one was written before; False when it was."""
    job_id = event_id_of(msg)
    async with unit_of_work(ctx.sessions) as session:
        if not await claim_event(session, processed_events, consumer, job_id):
            return False
        await add_event(
            session,
            ctx.outbox,
            subject,
            event,
            event_id=f"{prefix}-{job_id}" if job_id else None,
        )
    return True


def failure_of(exc: BaseException, task: str) -> tuple[str, str]:
    """(PRD error code, learner-facing message) for a job that gave up."""
    if isinstance(exc, PermanentError) and exc.__cause__ is not None:
        exc = exc.__cause__  # what made it permanent
    if isinstance(exc, BudgetExceededError):
        return (
            LLM_BUDGET_EXCEEDED,
            "오늘의 LLM 사용 예산을 모두 사용했습니다. 내일 다시 시도해 주세요.",
        )
    if isinstance(exc, RateLimitedError):
        return LLM_RATE_LIMIT, "LLM API 요청 한도 초과로 생성하지 못했습니다. 다시 시도해 주세요."
    return GENERATION_FAILED, FAILURE_MESSAGES.get(task, FAILURE_MESSAGES["article"])


async def publish_failure(
    ctx: JobContext, consumer: str, msg: Msg, event: events_pb2.GenerationFailed
) -> None:
    event.occurred_at.CopyFrom(timestamp())
    written = await publish_once(ctx, consumer, msg, TASK_FAILED, event, "failed")
    log.error(
        "session_task_gave_up",
        task=event.task,
        session_id=event.session_id,
        article_id=event.article_id or None,
        error_code=event.error_code,
        published=written,
    )


def rate_limit_announcer(ctx: JobContext, session_id: str) -> OnRateLimited:
    """Tells the session's watchers that the engine waits out a rate limit (PRD §3.6 error,
    auto_retry: true), on core NATS `progress.session.<id>` with sequence 0 (a notice outside
    the session's numbered progress)."""
    nc = ctx.nc

    async def announce(provider: str, retry_after_s: float) -> None:
        data = rate_limit_notice(retry_after_s) | {"session_id": session_id}
        notice = events_pb2.SessionProgress(
            session_id=session_id, type="error", data_json=json.dumps(data, ensure_ascii=False)
        )
        try:
            await nc.publish(f"progress.session.{session_id}", notice.SerializeToString())
        except Exception as exc:
            log.warning("rate_limit_notice_failed", session_id=session_id, error=str(exc))

    return announce


async def generate(
    ctx: JobContext, task: TaskKind, session_id: str, context_json: str
) -> tuple[Generated, dict[str, Any], float]:
    """Runs the engine for one session job: (its output, the job's context, when it started)."""
    context = context_of(context_json)
    started = time.monotonic()
    try:
        generated = await ctx.engine.generate(
            task,
            context,
            session_id=session_id,
            on_rate_limited=rate_limit_announcer(ctx, session_id),
        )
    except ValueError as exc:  # a context the prompts refuse: retrying cannot help
        raise PermanentError(str(exc)) from exc
    except BudgetExceededError as exc:  # the day's budget is spent: retrying only spends more
        raise PermanentError(exc.message) from exc
    return generated, context, started
