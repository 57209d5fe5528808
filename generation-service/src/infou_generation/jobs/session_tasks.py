"""The one runner of the session generation jobs (curriculum, article, conversion).

Each kind is a `SessionJob`: its job payload, its task, the result event it publishes and how
that event and the failure event name the job; `consumer(ctx, spec)` turns a spec into its
durable consumer, so the three kinds share one handler and one give-up path.

A job carries its task's input (`context_json`, built by session-service when it enqueued the
job; content/prompts.py documents the keys), so a worker needs nothing but the message. The
result goes back as an event through this service's outbox, in one transaction with the claim
of the job's event id: a job redelivered after its result was committed (the worker died before
acking) publishes nothing twice, and a job redelivered before that regenerates from the content
cache at no cost. A job that gives up publishes `events.generation.task_failed` instead, with
the PRD error code the learner sees. Both carry the job's `attempt` (the session's generation
attempt, see events.proto), so session-service can tell the results of a run a retry replaced.
Every answer passes output moderation before the engine stores it (engine.py: flagged →
generated once more; flagged again → CONTENT_FLAGGED).

Each delivery goes through the one consume path (`infou_libs.consume`): the engine's work is
the route's `prepare` (run only while the job's event id is unclaimed, with no transaction of
the job's open), and the job's unit of work is the route's effect: the claim of the job's event
id and its result event, committed together. While it generates, the engine has short
transactions of its own (the cache lookup; per provider call the budget hold before it and the
ledger row with the settled hold after it; llm/router.py says why they cannot wait for the
job's end).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation import personal_adaptation
from infou_generation.content.moderation import CONTENT_FLAGGED, FlaggedOutputError
from infou_generation.content.quality import (
    QUALITY_THRESHOLD,
    article_markdown,
    read_time,
    word_count,
)
from infou_generation.engine import Generated, OnRateLimited
from infou_generation.jobs.runner import JobContext, durable_name, job_consumer
from infou_generation.llm.notices import rate_limit_notice
from infou_generation.llm.types import (
    BudgetExceededError,
    CallsExhaustedError,
    ProvidersDownError,
    QualityBelowThresholdError,
    RateLimitedError,
    TaskKind,
)
from infou_generation.models import processed_events
from infou_libs import subjects
from infou_libs.consume import Route, consume_handler
from infou_libs.logging import get_logger
from infou_libs.messaging import DurableConsumer, PermanentError, event_id_of
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

GENERATION_FAILED = "GENERATION_FAILED"
LLM_BUDGET_EXCEEDED = "LLM_BUDGET_EXCEEDED"
LLM_RATE_LIMIT = "LLM_RATE_LIMIT"
QUALITY_BELOW_THRESHOLD = "QUALITY_BELOW_THRESHOLD"
# Leads the markdown of every article the offline provider wrote: the learner sees it is filler.
OFFLINE_NOTICE = (
    "> **안내:** 이 글은 LLM 없이 오프라인 템플릿으로 작성된 예시입니다. "
    "실제 학습 내용이 아니며 품질이 검증되지 않았습니다."
)
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
        saved_usd=float(generated.saved_usd),
    )


def written_of(generated: Generated, level: str) -> events_pb2.WrittenArticle:
    """The article as session-service stores it: markdown, counts, gate verdict, parts."""
    data = generated.data
    content = article_markdown(data)
    words = generated.quality.word_count if generated.quality else word_count(content)
    if is_offline(generated):
        content = f"{OFFLINE_NOTICE}\n\n{content}"
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
        quality_report_json=json.dumps(quality_report(generated), ensure_ascii=False),
    )


def is_offline(generated: Generated) -> bool:
    """Written by the offline provider (template text, no model)."""
    return generated.provider == "offline" or generated.model.startswith("offline")


def quality_report(generated: Generated) -> dict[str, Any] | None:
    """The gate's report as the article's metadata shows it (None: not gated)."""
    report = generated.quality
    if report is None:
        return None
    shown: dict[str, Any] = {
        "score": report.score,
        "passed": report.passed,
        # The offline provider's template text passes the gate by construction: its score
        # measures the template, it is no judgement of content.
        "judged": not is_offline(generated),
        "threshold": QUALITY_THRESHOLD,
        "warnings": list(report.warnings),
        "level_fit": list(report.level_fit),
        "checks": dict(report.metrics),
    }
    if report.judge is not None:
        shown["judge"] = dict(report.judge)
    return shown


def failure_of(exc: BaseException, task: str) -> tuple[str, str]:
    """(PRD error code, learner-facing message) for a job that gave up."""
    if isinstance(exc, PermanentError) and exc.__cause__ is not None:
        exc = exc.__cause__  # what made it permanent
    if isinstance(exc, BudgetExceededError):
        return (
            LLM_BUDGET_EXCEEDED,
            "오늘의 LLM 사용 예산을 모두 사용했습니다. 내일 다시 시도해 주세요.",
        )
    if isinstance(exc, QualityBelowThresholdError):
        # The code leads the message: session-service keeps the message as the failure reason
        # that GET /sessions/{id} and the article show.
        return (
            QUALITY_BELOW_THRESHOLD,
            f"[{QUALITY_BELOW_THRESHOLD}] 생성된 글이 품질 기준을 통과하지 못했습니다. "
            "다시 시도해 주세요.",
        )
    if isinstance(exc, FlaggedOutputError):
        return (
            CONTENT_FLAGGED,
            f"[{CONTENT_FLAGGED}] 생성된 내용이 콘텐츠 안전 검사를 통과하지 못했습니다. "
            "다시 시도해 주세요.",
        )
    if isinstance(exc, RateLimitedError) or (
        isinstance(exc, ProvidersDownError | CallsExhaustedError) and exc.rate_limited
    ):
        return LLM_RATE_LIMIT, "LLM API 요청 한도 초과로 생성하지 못했습니다. 다시 시도해 주세요."
    return GENERATION_FAILED, FAILURE_MESSAGES.get(task, FAILURE_MESSAGES["article"])


def rate_limit_announcer(ctx: JobContext, session_id: str) -> OnRateLimited:
    """Tells the session's watchers that the engine waits out a rate limit (PRD §3.6 error,
    auto_retry: true), on core NATS `progress.session.<id>` with sequence 0 (a notice outside
    the session's numbered progress)."""
    nc = ctx.nc

    async def announce(provider: str, retry_after_s: float) -> None:  # noqa: ARG001 — router callback
        data = rate_limit_notice(retry_after_s) | {"session_id": session_id}
        notice = events_pb2.SessionProgress(
            session_id=session_id, type="error", data_json=json.dumps(data, ensure_ascii=False)
        )
        try:
            await nc.publish(subjects.progress_subject(session_id), notice.SerializeToString())
        except Exception as exc:
            log.warning("rate_limit_notice_failed", session_id=session_id, error=str(exc))

    return announce


async def generate(
    ctx: JobContext, task: TaskKind, session_id: str, context_json: str, job_id: str = ""
) -> tuple[Generated, dict[str, Any], float]:
    """Runs the engine for one session job: (its output, the job's context, when it started).

    `job_id` (the job's event id) counts its provider calls over every delivery."""
    context = context_of(context_json)
    started = time.monotonic()
    try:
        generated = await ctx.engine.generate(
            task,
            context,
            session_id=session_id,
            on_rate_limited=rate_limit_announcer(ctx, session_id),
            job_id=job_id or None,
        )
        # The learner's own section over the shared answer; it never fails the job.
        generated = await personal_adaptation.adapt(
            ctx.engine,
            ctx.sessions,
            task,
            context,
            generated,
            session_id=session_id,
            job_id=job_id or None,
            on_rate_limited=rate_limit_announcer(ctx, session_id),
        )
    except ValueError as exc:  # a context the prompts refuse: retrying cannot help
        raise PermanentError(str(exc)) from exc
    except BudgetExceededError as exc:  # the day's budget is spent: retrying only spends more
        raise PermanentError(exc.message) from exc
    except QualityBelowThresholdError as exc:  # every provider had its turn: retrying repeats them
        raise PermanentError(exc.message) from exc
    except FlaggedOutputError as exc:  # regenerated once already: moderation decided
        raise PermanentError(str(exc)) from exc
    except ProvidersDownError as exc:  # every provider cools down: a retry now would call none
        raise PermanentError(exc.message) from exc
    except CallsExhaustedError as exc:  # the job's allowance is spent: a retry may not call
        raise PermanentError(exc.message) from exc
    return generated, context, started


# The payloads of the session jobs: each names its session and carries its task's context.
J = TypeVar(
    "J",
    events_pb2.GenerateCurriculumJob,
    events_pb2.GenerateArticleJob,
    events_pb2.ConvertArticleJob,
)


@dataclass(frozen=True)
class SessionJob(Generic[J]):
    """One kind of session job: what the runner needs to run it and to report its outcome."""

    kind: str  # subject jobs.<kind>, durable gen-<kind> (dots as dashes)
    task: TaskKind
    payload: type[J]
    subject: str  # of the result event
    event_prefix: str  # the result's event id is "<prefix>-<the job's event id>"
    logged_as: str
    # The result event (given the job, its output, its context and usage) and what to log.
    result: Callable[
        [J, Generated, dict[str, Any], events_pb2.GenerationUsage], tuple[Message, dict[str, Any]]
    ]
    # The failure event naming this job (the runner adds the error code and message).
    failed: Callable[[J], events_pb2.GenerationFailed]


def consumer(ctx: JobContext, spec: SessionJob[J]) -> DurableConsumer:
    """The durable consumer of one session job kind (see the module doc)."""
    name = durable_name(spec.kind)

    async def handle(msg: Msg) -> None:
        job_id = event_id_of(msg)

        # The engine's work, outside the job's transaction and only for an unclaimed job.
        async def prepare(job: J) -> _Outcome:
            generated, context, started = await generate(
                ctx, spec.task, job.session_id, job.context_json, job_id
            )
            event, logged = spec.result(job, generated, context, usage_of(generated, started))
            _echo_attempt(job, event)
            return _Outcome(event, generated, logged)

        async def effect(db: AsyncSession, outcome: _Outcome) -> _Outcome:
            await add_event(
                db,
                ctx.outbox,
                spec.subject,
                outcome.event,
                event_id=_result_id(spec.event_prefix, job_id),
            )
            return outcome

        async def logged(job: J, outcome: _Outcome) -> None:
            log.info(
                spec.logged_as,
                session_id=job.session_id,
                cache_hit=outcome.generated.cache_hit,
                tokens=outcome.generated.total_tokens,
                **outcome.logged,
            )

        await _once(ctx, name, msg, Route(spec.payload, effect, logged, prepare))

    async def exhausted(msg: Msg, exc: BaseException) -> None:
        try:
            job = spec.payload.FromString(msg.data)
        except Exception:
            return
        event = spec.failed(job)
        _echo_attempt(job, event)
        event.error_code, event.message = failure_of(exc, spec.task)
        event.occurred_at.CopyFrom(timestamp())
        written = False

        async def effect(db: AsyncSession, _job: J) -> None:
            nonlocal written
            failed_id = _result_id("failed", event_id_of(msg))
            await add_event(db, ctx.outbox, subjects.TASK_FAILED, event, event_id=failed_id)
            written = True

        # Claimed under the job's event id like its result: a job that succeeded reports nothing.
        await _once(ctx, name, msg, Route(spec.payload, effect))
        log.error(
            "session_task_gave_up",
            task=event.task,
            session_id=event.session_id,
            article_id=event.article_id or None,
            error_code=event.error_code,
            published=written,
        )

    return job_consumer(ctx, spec.kind, handle, on_exhausted=exhausted)


@dataclass(frozen=True)
class _Outcome:
    event: Message
    generated: Generated
    logged: dict[str, Any]


def _echo_attempt(job: Message, event: Message) -> None:
    """Copies the job's session generation attempt into its result or failure event, so that
    session-service can ignore the results of an attempt a retry replaced (conversions carry
    none: their events keep 0)."""
    if "attempt" in job.DESCRIPTOR.fields_by_name and "attempt" in event.DESCRIPTOR.fields_by_name:
        event.attempt = job.attempt  # type: ignore[attr-defined]


def _result_id(prefix: str, job_id: str) -> str | None:
    """The id of the event a job answers with, derived from the job's (so it is written once)."""
    return f"{prefix}-{job_id}" if job_id else None


async def _once(ctx: JobContext, consumer: str, msg: Msg, route: Route[J]) -> None:
    """One delivery of a job through the one consume path: its outcome is claimed by the job's
    event id, in one transaction with the event it writes."""
    handler = consume_handler(ctx.sessions, processed_events, consumer, {msg.subject: route})
    await handler(msg)
