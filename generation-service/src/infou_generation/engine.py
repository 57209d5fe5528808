"""The generation engine facade: one call per piece of content, cache first, quality-gated.

`GenerationEngine.generate(task, context)` renders the task's versioned prompt
(`content.prompts`), serves it from the content cache when content for the same key was
generated before (`content.reuse`: sub-topic, level, slot, prompt version, model family; zero
tokens, zero cost, a `cache_hit` ledger row and `Generated.saved_usd` recording the cost saved),
and otherwise asks the LLM router, checks the answer against the task's schema
(`content.schemas.validate_output`) and, for articles and level conversions, scores it with the
quality gate (`content.quality.evaluate`). An answer that fails the schema's bounds or the gate
is generated once more (a fresh attempt that is told what was wrong). When the gate refused both,
each further provider on the task's route gets one attempt, told the gate's findings, until one
passes; when none does, `QualityBelowThresholdError` (code QUALITY_BELOW_THRESHOLD) is raised:
an article under the threshold is never returned.

The answer chosen then passes output moderation (`content.moderation`: OpenAI's endpoint when
OpenAI is configured, the local check otherwise) before anything stores it: a flagged answer is
dropped and the task written once more, fresh; a second flagged answer raises
`content.moderation.FlaggedOutputError` (code CONTENT_FLAGGED). Only answers that pass both the
gate and moderation are cached, so a cache hit is served without asking moderation again.

With the LLM judge on (INFOU_QUALITY_LLM_JUDGE, `content.judge`), an answer the heuristic gate
passes is judged by one more call (task quality_judge, the cheapest configured model, through
the router: on the ledger and the budget like any call); a verdict that refuses it fails the
gate just like a heuristic finding. A judge call that fails leaves the answer passed, with
`judge.status` "unavailable" in its report; without a real provider the judge is skipped
("skipped": judged by heuristics only). Cache hits are not judged again.

Job handlers build the context from ids (see `content.prompts` for each task's keys) and call
`generate`; what it raises: `content.prompts.ContextError` (a `ValueError`: a bad context, not
worth retrying), `llm.BudgetExceededError` (code LLM_BUDGET_EXCEEDED),
`llm.types.QualityBelowThresholdError` and `FlaggedOutputError` (not worth retrying either) and
other `llm.LLMError`s (worth retrying).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from prometheus_client import Counter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import ledger, repository
from infou_generation.content import judge, prompts, reuse
from infou_generation.content.moderation import (
    ContentModeration,
    FlaggedOutputError,
    ModerationVerdict,
    build_moderation,
)
from infou_generation.content.quality import QualityReport, evaluate, expects_code
from infou_generation.content.schemas import OutputError, validate_output
from infou_generation.ledger import LedgerEntry
from infou_generation.llm.router import LLMRouter, build_router
from infou_generation.llm.types import (
    BudgetExceededError,
    InvalidOutputError,
    LLMError,
    LLMRequest,
    LLMResult,
    NoProviderLeftError,
    QualityBelowThresholdError,
    TaskKind,
)
from infou_generation.models import ContentCache
from infou_generation.settings import GenerationSettings
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)

CONTENT_CACHE_LOOKUPS = Counter(
    "infou_content_cache_lookups_total",
    "Content cache lookups before generation, by task and result (hit, miss)",
    ["task", "result"],
)

JUDGE_VERDICTS = Counter(
    "infou_quality_judge_total",
    "LLM judge outcomes on answers the heuristic gate passed, by task and result "
    "(passed, failed, unavailable, skipped)",
    ["task", "result"],
)

OnRateLimited = Callable[[str, float], Awaitable[None]]

# Tasks whose answers pass the quality gate before they are used.
GATED_TASKS: Final = frozenset({"article", "level_conversion"})
# Most tokens an answer may take; the budget holds this much output before each call.
MAX_OUTPUT_TOKENS: Final[dict[str, int]] = {
    "subtopics": 3000,
    "curriculum": 4000,
    "article": 8000,
    "level_conversion": 8000,
    "quality_judge": 1000,
}
TEMPERATURE: Final = 0.7
EXCERPT_CHARS: Final = 500
# An answer holding this many characters of a system prompt line in a row repeats the prompt.
ECHO_CHARS: Final = 24
_TASK_CONTEXT = re.compile(r"<task_context>.*?</task_context>", re.DOTALL)


@dataclass(frozen=True)
class Generated:
    """A schema-valid answer for one task, what it cost and how it was obtained.

    `model` is "offline-…" for the offline composer; `cache_hit` means zero tokens and cost;
    `prompt_excerpt` holds no learner text (for metadata.generation_prompt); `quality` is set
    for articles and level conversions; `attempts` counts provider attempts: 1, 2 when the
    schema's bounds or the quality gate asked for one regeneration, 0 for a cache hit.
    """

    data: dict[str, Any]
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cache_hit: bool
    prompt_version: str
    prompt_excerpt: str
    quality: QualityReport | None
    attempts: int
    # A cache hit: what the content cost when it was generated (the money the cache saved).
    saved_usd: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def prompt_excerpt(rendered: prompts.RenderedPrompt) -> str:
    """What was asked, without learner text: the task, prompt version and the instructions.

    The context (everything the learner typed) is replaced by a placeholder, and the system
    prompt is named, not quoted: the excerpt is shown to learners (article metadata), and the
    system prompt is never revealed.
    """
    instructions = _TASK_CONTEXT.sub("<task_context>…</task_context>", rendered.user)
    header = f"[{rendered.schema_name} · prompt {rendered.version}]"
    return f"{header}\n{instructions}"[:EXCERPT_CHARS]


def quality_options_of(task: str, context: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG001 — both tasks share the options
    """The gate's options for a validated article or level-conversion context."""
    options = context["options"]
    return {
        "level": context["level"],
        "preferred_article_length": options["preferred_article_length"],
        "include_examples": options["include_examples"],
        "include_practice_problems": options["include_practice_problems"],
        "expects_code": expects_code(context["main_topic"]["category"], context["sub_topic"]),
        "topic_names": (context["main_topic"]["name"], context["sub_topic"]["name"]),
    }


@dataclass(frozen=True)
class _Attempt:
    result: LLMResult
    data: dict[str, Any] | None
    problem: str | None
    quality: QualityReport | None
    # The LLM judge's call on this answer (its tokens and cost count with the answer's).
    judged_by: LLMResult | None = None

    @property
    def results(self) -> list[LLMResult]:
        return [self.result] if self.judged_by is None else [self.result, self.judged_by]

    @property
    def score(self) -> float:
        if self.data is None:
            return -1.0
        return self.quality.score if self.quality is not None else 1.0

    @property
    def good(self) -> bool:
        return self.data is not None and (self.quality is None or self.quality.passed)


class GenerationEngine:
    """Content for a task and context, from the cache or the LLM router (see the module doc)."""

    def __init__(
        self,
        router: LLMRouter,
        sessions: async_sessionmaker[AsyncSession],
        *,
        llm_judge: bool = False,
        moderation: ContentModeration | None = None,
    ) -> None:
        self.router = router
        self._sessions = sessions
        self.llm_judge = llm_judge
        # Checks every answer before it is stored; the local check when none is given.
        self.moderation = moderation or ContentModeration()

    async def aclose(self) -> None:
        await self.router.aclose()
        await self.moderation.aclose()

    def cache_key(self, task: TaskKind, context: dict[str, Any]) -> reuse.ContentKey:
        """The content cache key of a validated context, for the model first on the task's route."""
        route = self.router.routes.get(task) or []
        family = (
            reuse.model_family(route[0], self.router.configs[route[0]].model) if route else "none"
        )
        return reuse.content_key(task, context, family=family)

    def content_key_of(self, task: TaskKind, context: dict[str, Any]) -> reuse.ContentKey:
        """The content cache key `generate` uses for an unvalidated job context."""
        return self.cache_key(
            task, prompts.render(task, reuse.shared_context(task, context)).context
        )

    async def generate(
        self,
        task: TaskKind,
        context: dict[str, Any],
        *,
        session_id: str | None = None,
        generation_id: str | None = None,
        quality_options: dict[str, Any] | None = None,
        on_rate_limited: OnRateLimited | None = None,
        use_cache: bool = True,
        job_id: str | None = None,
    ) -> Generated:
        """A schema-valid answer: cached when possible, otherwise generated (at most twice)."""
        rendered = prompts.render(task, reuse.shared_context(task, context))
        key = self.cache_key(task, rendered.context)
        excerpt = prompt_excerpt(rendered)
        gate = None
        if task in GATED_TASKS:
            gate = quality_options_of(task, rendered.context) | (quality_options or {})

        if use_cache:
            hit = await self._from_cache(key.value, task, session_id, generation_id)
            CONTENT_CACHE_LOOKUPS.labels(task, "hit" if hit is not None else "miss").inc()
            if hit is not None:
                quality = evaluate(hit.data, **gate) if gate is not None else None
                log.info(
                    "generation_cache_hit",
                    task=task,
                    cache_hit=True,
                    session_id=session_id,
                    generation_id=generation_id,
                )
                return Generated(
                    data=hit.data,
                    model=hit.model,
                    provider=hit.provider,
                    input_tokens=0,
                    output_tokens=0,
                    cost_usd=Decimal(0),
                    cache_hit=True,
                    prompt_version=rendered.version,
                    prompt_excerpt=excerpt,
                    quality=quality,
                    attempts=0,
                    saved_usd=hit.cost_usd,
                )

        request = LLMRequest(
            task=task,
            system=rendered.system,
            user=rendered.user,
            schema_name=rendered.schema_name,
            json_schema=rendered.json_schema,
            context=rendered.context,
            max_output_tokens=MAX_OUTPUT_TOKENS[task],
            temperature=TEMPERATURE,
            session_id=session_id,
            generation_id=generation_id,
            job_id=job_id,
        )
        best, attempts = await self._written(task, request, gate, on_rate_limited)
        if (await self._moderated(task, best, request, regenerating=True)).flagged:
            # Neither stored nor served: written once more, fresh (both answers are paid for).
            best, again = await self._written(task, request, gate, on_rate_limited)
            attempts += again
            verdict = await self._moderated(task, best, request, regenerating=False)
            if verdict.flagged:
                raise FlaggedOutputError(task, verdict.categories)
        assert best.data is not None
        results = [r for a in attempts for r in a.results]
        input_tokens = sum(r.input_tokens for r in results)
        output_tokens = sum(r.output_tokens for r in results)
        cost = sum((r.cost_usd for r in results), Decimal(0))
        await self._store(key, task, rendered.version, best, input_tokens, output_tokens, cost)
        return Generated(
            data=best.data,
            model=best.result.model,
            provider=best.result.provider,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            cache_hit=False,
            prompt_version=rendered.version,
            prompt_excerpt=excerpt,
            quality=best.quality,
            attempts=len(attempts),
        )

    async def _written(
        self,
        task: str,
        request: LLMRequest,
        gate: dict[str, Any] | None,
        on_rate_limited: OnRateLimited | None,
    ) -> tuple[_Attempt, list[_Attempt]]:
        """The best answer that passes the schema and the gate, and every attempt made for it
        (a regeneration, then the next providers); raises when none passes."""
        session_id, generation_id = request.session_id, request.generation_id
        first = await self._attempt(task, request, gate, on_rate_limited)
        attempts = [first]
        if not first.good:
            log.info(
                "generation_regenerating",
                task=task,
                problem=first.problem,
                quality_score=first.quality.score if first.quality else None,
                warnings=first.quality.warnings if first.quality else None,
                session_id=session_id,
                generation_id=generation_id,
            )
            retry = _revised(request, first)
            attempts.append(await self._attempt(task, retry, gate, on_rate_limited))
        if not any(a.good for a in attempts) and any(a.quality is not None for a in attempts):
            # The gate refused both answers: the next providers on the route get their turn.
            attempts += await self._next_providers(task, request, attempts, gate, on_rate_limited)
        best = max(attempts, key=lambda a: (a.good, a.score))
        if best.data is None:
            raise InvalidOutputError(
                f"{task}: no answer met the schema after {len(attempts)} attempts: {best.problem}",
                provider=best.result.provider,
            )
        if not best.good:
            assert best.quality is not None
            log.warning(
                "generation_below_quality_threshold",
                task=task,
                quality_score=best.quality.score,
                warnings=best.quality.warnings,
                level_fit=best.quality.level_fit,
                providers=sorted({a.result.provider for a in attempts}),
                session_id=session_id,
                generation_id=generation_id,
            )
            raise QualityBelowThresholdError(
                f"{task}: every answer scored under the quality threshold "
                f"(best {best.quality.score}: {', '.join(best.quality.warnings)})",
                report=best.quality,
                provider=best.result.provider,
            )
        return best, attempts

    async def _moderated(
        self, task: str, best: _Attempt, request: LLMRequest, *, regenerating: bool
    ) -> ModerationVerdict:
        """Output moderation's verdict on an answer about to be stored (see the module doc)."""
        assert best.data is not None
        verdict = await self.moderation.check(output_texts(task, best.data), stage="output")
        if verdict.flagged:
            log.warning(
                "generation_output_flagged",
                task=task,
                regenerating=regenerating,
                session_id=request.session_id,
                generation_id=request.generation_id,
            )
        return verdict

    async def _next_providers(
        self,
        task: str,
        request: LLMRequest,
        attempts: list[_Attempt],
        gate: dict[str, Any] | None,
        on_rate_limited: OnRateLimited | None,
    ) -> list[_Attempt]:
        """One attempt on each provider of the route that has not answered yet, told what the
        gate found, until one passes (a provider that fails outright ends the search)."""
        more: list[_Attempt] = []
        tried = {a.result.provider for a in attempts}
        while True:
            best = max([*attempts, *more], key=lambda a: a.score)
            try:
                result = await self.router.generate(
                    _revised(request, best), on_rate_limited=on_rate_limited, exclude=tried
                )
            except NoProviderLeftError:
                return more
            except BudgetExceededError:
                raise
            except LLMError as exc:
                log.warning("generation_next_provider_failed", task=task, error=exc.message)
                return more
            tried.add(result.provider)
            attempt = await self._judged(
                task, request, self._checked(task, request, result, gate), gate, on_rate_limited
            )
            more.append(attempt)
            log.info(
                "generation_next_provider",
                task=task,
                llm_provider=result.provider,
                quality_score=attempt.quality.score if attempt.quality else None,
            )
            if attempt.good:
                return more

    async def _attempt(
        self,
        task: str,
        request: LLMRequest,
        gate: dict[str, Any] | None,
        on_rate_limited: OnRateLimited | None,
    ) -> _Attempt:
        result = await self.router.generate(request, on_rate_limited=on_rate_limited)
        attempt = self._checked(task, request, result, gate)
        return await self._judged(task, request, attempt, gate, on_rate_limited)

    async def _judged(
        self,
        task: str,
        request: LLMRequest,
        attempt: _Attempt,
        gate: dict[str, Any] | None,
        on_rate_limited: OnRateLimited | None,
    ) -> _Attempt:
        """The attempt with the LLM judge's verdict, when the judge is on and the heuristic
        gate passed it (see the module doc)."""
        if not self.llm_judge or gate is None or not attempt.good:
            return attempt
        assert attempt.quality is not None
        assert attempt.data is not None
        if not self.router.routes.get("quality_judge"):
            JUDGE_VERDICTS.labels(task, "skipped").inc()
            skipped = {"status": "skipped", "reason": "no real LLM provider: heuristics only"}
            return replace(attempt, quality=replace(attempt.quality, judge=skipped))
        prompt = judge.render(gate["level"], attempt.data)
        judge_request = LLMRequest(
            task="quality_judge",
            system=prompt.system,
            user=prompt.user,
            schema_name=judge.SCHEMA_NAME,
            json_schema=copy.deepcopy(judge.SCHEMA),
            context=prompt.context,
            max_output_tokens=MAX_OUTPUT_TOKENS["quality_judge"],
            temperature=0.0,
            session_id=request.session_id,
            generation_id=request.generation_id,
            job_id=request.job_id,
        )
        try:
            result = await self.router.generate(judge_request, on_rate_limited=on_rate_limited)
        except LLMError as exc:
            # The judge is a second opinion: without it the heuristic verdict stands.
            JUDGE_VERDICTS.labels(task, "unavailable").inc()
            log.warning(
                "quality_judge_unavailable",
                task=task,
                error=exc.message,
                error_type=type(exc).__name__,
                session_id=request.session_id,
                generation_id=request.generation_id,
            )
            unavailable = {"status": "unavailable", "error": type(exc).__name__}
            return replace(attempt, quality=replace(attempt.quality, judge=unavailable))
        verdict = judge.verdict(result.data) | {
            "provider": result.provider,
            "model": result.model,
        }
        quality = replace(attempt.quality, judge=verdict)
        if not verdict["passed"]:
            findings = []
            if not verdict["fits_level"]:
                findings.append("llm_judge:level_mismatch")
            if verdict["score"] < judge.JUDGE_THRESHOLD:
                findings.append("llm_judge:low_score")
            if verdict["factual_issues"]:
                findings.append("llm_judge:factual_issues")
            quality = replace(quality, passed=False, warnings=[*quality.warnings, *findings])
        JUDGE_VERDICTS.labels(task, "passed" if verdict["passed"] else "failed").inc()
        log.info(
            "quality_judge_verdict",
            task=task,
            passed=verdict["passed"],
            fits_level=verdict["fits_level"],
            judge_score=verdict["score"],
            llm_provider=result.provider,
            generation_id=request.generation_id,
        )
        return replace(attempt, quality=quality, judged_by=result)

    @staticmethod
    def _checked(
        task: str, request: LLMRequest, result: LLMResult, gate: dict[str, Any] | None
    ) -> _Attempt:
        """The answer checked against the schema, the system prompt and the quality gate."""
        try:
            validate_output(task, result.data)
        except OutputError as exc:
            return _Attempt(result, None, str(exc), None)
        if echoes_system_prompt(result.data, request.system):
            # Learner text asked for the instructions and the model obliged: never keep that.
            log.warning("generation_echoed_system_prompt", task=task, llm_provider=result.provider)
            return _Attempt(result, None, "the answer repeats the system prompt", None)
        quality = evaluate(result.data, **gate) if gate is not None else None
        return _Attempt(result, result.data, None, quality)

    async def _from_cache(
        self, key: str, task: str, session_id: str | None, generation_id: str | None
    ) -> ContentCache | None:
        # Its own short transaction (the hit, its count and its ledger row together): the
        # caller's unit of work opens only once the job's result is ready, after the LLM calls.
        async with unit_of_work(self._sessions) as session:
            row = await repository.cached_content(session, key)
            if row is None:
                return None
            entry = LedgerEntry(
                provider=row.provider,
                model=row.model,
                task=task,
                status="cache_hit",
                session_id=session_id,
                generation_id=generation_id,
                saved_usd=row.cost_usd,
            )
            await ledger.record(session, entry)
        ledger.observe(entry)
        return row

    async def _store(
        self,
        key: reuse.ContentKey,
        task: str,
        version: str,
        best: _Attempt,
        input_tokens: int,
        output_tokens: int,
        cost: Decimal,
    ) -> None:
        assert best.data is not None
        values = {
            "key": key.value,
            "task": task,
            "personal": key.personal,
            "model_family": key.model_family[:100],
            "prompt_version": version,
            "data": best.data,
            "provider": best.result.provider,
            "model": best.result.model[:100],
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost,
            "quality_score": Decimal(str(round(best.quality.score, 3))) if best.quality else None,
        }
        # Its own transaction, committed before the job's result: a failed cache write must
        # not lose an answer already paid for, and a redelivered job finds the answer cached.
        try:
            async with unit_of_work(self._sessions) as session:
                await repository.add_cached_content(session, values)
        except Exception as exc:
            # The answer is already paid for and worth more than its cache row.
            log.error("content_cache_write_failed", task=task, error=str(exc))


def echoes_system_prompt(data: dict[str, Any], system: str) -> bool:
    """Whether any string in the answer holds a line of the system prompt (its first
    `ECHO_CHARS` characters, spaces normalised)."""
    text = " ".join(" ".join(_strings(data)).split())
    for line in system.splitlines():
        line = " ".join(line.split())
        if len(line) >= ECHO_CHARS and line[:ECHO_CHARS] in text:
            return True
    return False


def output_texts(task: str, data: dict[str, Any]) -> dict[str, str]:
    """The text of an answer to moderate, as one field named after the task."""
    return {task: "\n".join(_strings(data))}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _revised(request: LLMRequest, first: _Attempt) -> LLMRequest:
    """The request once more, told what was wrong with the first answer (our codes only)."""
    if first.data is None:
        problem = f"출력 검사 실패: {first.problem}"
    else:
        # The gate's findings, our own codes: data for the model, never learner text.
        assert first.quality is not None
        problem = "품질 검사 경고: " + ", ".join(first.quality.warnings)
        if first.quality.level_fit:
            problem += "; 난이도 불일치: " + ", ".join(first.quality.level_fit)
    note = (
        "\n\n[다시 작성 요청] 이전 답변이 검사를 통과하지 못했습니다 "
        f"({problem[:400]}). 지침을 모두 지켜 처음부터 다시 작성하세요."
    )
    return LLMRequest(**{**request.__dict__, "user": request.user + note})


def build_engine(
    settings: GenerationSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    redis: Redis | None = None,
) -> GenerationEngine:
    """The engine for these settings: the configured providers behind the router.

    With `redis`, the providers' circuit breakers are shared by every worker using it.
    """
    return GenerationEngine(
        build_router(settings, sessions, redis=redis),
        sessions,
        llm_judge=settings.quality_llm_judge,
        moderation=build_moderation(settings),
    )
