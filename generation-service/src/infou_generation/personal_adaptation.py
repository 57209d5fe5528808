"""Personalisation over shared content: the learner's section, cached apart and encrypted.

Articles and level conversions are written without learner text and shared (content/reuse.py).
For a job whose learner wrote something (interests, goals, preferred style, time availability),
`adapt` adds a short personal section (content/adaptation.py) to the shared answer:

* from the adaptation cache (`content_adaptations`, keyed by the shared entry's key, the
  adaptation's version and model family, and a keyed hash of the learner text): no call, a
  `cache_hit` ledger row with what it saved;
* otherwise from one call of task ``article_adaptation`` through the engine's router — the
  cheapest configured model (the offline composer without a real provider), at most
  `MAX_OUTPUT_TOKENS` of output — so it is on the ledger, held against the daily budget and
  counted in the job's call allowance (INFOU_LLM_MAX_CALLS_PER_JOB). Its answer is checked
  (schema, length, no echo of the system prompt) and moderated before it is used or stored. The
  row holds ciphertext (`EncryptedJSON`) and is deleted with personal data (retention.py).

The section is garnish on an article that already passed the quality gate, so its failure never
fails the article: a call that fails (provider down, budget, allowance spent), an answer that
fails the checks, or one moderation flags, is dropped — the shared article is served alone, the
job is not retried, nothing is cached, and the learner's next request asks again. Each outcome is
logged (`article_adaptation_unavailable` / `article_adaptation_dropped`, never the text) and
counted in `infou_article_adaptations_total{task,result}`.
"""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal
from typing import Any, Final

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import ledger, repository
from infou_generation.content import adaptation, reuse
from infou_generation.engine import Generated, GenerationEngine, OnRateLimited, echoes_system_prompt
from infou_generation.ledger import LedgerEntry
from infou_generation.llm.types import LLMError, LLMRequest, LLMResult, TaskKind
from infou_generation.models import ContentAdaptation
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)

ADAPTATIONS = Counter(
    "infou_article_adaptations_total",
    "Personal adaptations of shared articles, by task and result (generated, cached, "
    "unavailable: the call failed, invalid, flagged, skipped: no provider routed)",
    ["task", "result"],
)

# Tasks whose shared answer gets a personal section (the curriculum's touch is its articles').
ADAPTED: Final = frozenset({"article", "level_conversion"})


async def adapt(
    engine: GenerationEngine,
    sessions: async_sessionmaker[AsyncSession],
    task: TaskKind,
    context: dict[str, Any],
    shared: Generated,
    *,
    session_id: str | None = None,
    job_id: str | None = None,
    on_rate_limited: OnRateLimited | None = None,
) -> Generated:
    """`shared` with the learner's section when the context holds learner text (module doc)."""
    learner = adaptation.learner_text(context.get("personalization"))
    if task not in ADAPTED or not learner:
        return shared
    route = engine.router.routes.get(adaptation.TASK) or []
    if not route:
        ADAPTATIONS.labels(task, "skipped").inc()
        return shared
    family = reuse.model_family(route[0], engine.router.configs[route[0]].model)
    base_key = engine.content_key_of(task, context).value
    key = reuse.adaptation_key(base_key, learner, family=family)

    hit = await _from_cache(sessions, key, session_id)
    if hit is not None:
        ADAPTATIONS.labels(task, "cached").inc()
        return _with(shared, hit.data, saved=hit.cost_usd, call=None)

    prompt = adaptation.render(str(context["level"]), shared.data, learner)
    request = LLMRequest(
        task=adaptation.TASK,
        system=prompt.system,
        user=prompt.user,
        schema_name=adaptation.SCHEMA_NAME,
        json_schema=copy.deepcopy(adaptation.SCHEMA),
        context=prompt.context,
        max_output_tokens=adaptation.MAX_OUTPUT_TOKENS,
        temperature=adaptation.TEMPERATURE,
        session_id=session_id,
        job_id=job_id,
    )
    try:
        result = await engine.router.generate(request, on_rate_limited=on_rate_limited)
    except LLMError as exc:
        ADAPTATIONS.labels(task, "unavailable").inc()
        log.warning(
            "article_adaptation_unavailable",
            task=task,
            error=exc.message,
            error_type=type(exc).__name__,
            session_id=session_id,
            served="shared article without its personal section",
        )
        return shared

    problem = adaptation.problem_of(result.data)
    if problem is None and echoes_system_prompt(result.data, request.system):
        problem = "the answer repeats the system prompt"
    if problem is None:
        text = "\n".join(str(result.data[k]) for k in adaptation.MAX_CHARS)
        verdict = await engine.moderation.check({adaptation.TASK: text}, stage="output")
        if verdict.flagged:
            problem = "flagged by moderation"
    if problem is not None:
        result_label = "flagged" if problem == "flagged by moderation" else "invalid"
        ADAPTATIONS.labels(task, result_label).inc()
        log.warning(
            "article_adaptation_dropped",
            task=task,
            problem=problem,
            llm_provider=result.provider,
            session_id=session_id,
            served="shared article without its personal section",
        )
        # The call was paid for: its cost stays with the article's.
        return _paid(shared, result)

    await _store(sessions, key, base_key, task, family, result)
    ADAPTATIONS.labels(task, "generated").inc()
    return _with(shared, result.data, saved=Decimal(0), call=result)


def _with(
    shared: Generated, section: dict[str, Any], *, saved: Decimal, call: LLMResult | None
) -> Generated:
    """The shared answer with the section: with the call's usage, or the hit's saving."""
    usage = shared if call is None else _paid(shared, call)
    return dataclasses.replace(
        usage,
        data=adaptation.with_adaptation(shared.data, section),
        saved_usd=shared.saved_usd + saved,
    )


def _paid(shared: Generated, call: LLMResult) -> Generated:
    """The shared answer's usage with one more call's tokens and cost (`attempts` stays the
    article's own: how often it was written)."""
    return dataclasses.replace(
        shared,
        input_tokens=shared.input_tokens + call.input_tokens,
        output_tokens=shared.output_tokens + call.output_tokens,
        cost_usd=shared.cost_usd + call.cost_usd,
        cache_hit=False,
    )


async def _from_cache(
    sessions: async_sessionmaker[AsyncSession], key: str, session_id: str | None
) -> ContentAdaptation | None:
    """The cached adaptation, its hit and its ledger row in one short transaction; None when
    there is none (or the lookup failed: the section is then written again)."""
    try:
        async with unit_of_work(sessions) as session:
            row = await repository.cached_adaptation(session, key)
            if row is None:
                return None
            entry = LedgerEntry(
                provider=row.provider,
                model=row.model,
                task=adaptation.TASK,
                status="cache_hit",
                session_id=session_id,
                saved_usd=row.cost_usd,
            )
            await ledger.record(session, entry)
    except Exception as exc:
        log.error("article_adaptation_lookup_failed", error=type(exc).__name__)
        return None
    ledger.observe(entry)
    return row


async def _store(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    base_key: str,
    task: TaskKind,
    family: str,
    result: LLMResult,
) -> None:
    values = {
        "key": key,
        "base_key": base_key,
        "task": task,
        "prompt_version": adaptation.VERSION,
        "model_family": family[:100],
        "data": result.data,
        "provider": result.provider,
        "model": result.model[:100],
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
    }
    try:
        async with unit_of_work(sessions) as session:
            await repository.add_adaptation(session, values)
    except Exception as exc:
        # The section is paid for and served; only its reuse is lost.
        log.error("article_adaptation_cache_write_failed", task=task, error=type(exc).__name__)
