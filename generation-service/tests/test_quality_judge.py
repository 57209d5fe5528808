"""The optional LLM judge of the quality gate (INFOU_QUALITY_LLM_JUDGE): one call to the cheapest
configured model after the heuristic gate passes, on the ledger and the budget; its refusal fails
the gate, its failure does not.

The fake LLM server behind the real SDKs; articles go to openai (gpt-4.1), the judge to the
cheaper anthropic model (claude-haiku-4-5); real Postgres for the ledger and the budget.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import content_examples as examples
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl
from infou_generation.engine import GenerationEngine, build_engine
from infou_generation.jobs.session_tasks import quality_report
from infou_generation.llm.types import QualityBelowThresholdError
from infou_generation.models import LLMCall
from infou_generation.settings import GenerationSettings

PRICES = {
    "openai": {"input_usd_per_token": "0.000002", "output_usd_per_token": "0.000008"},
    "anthropic": {"input_usd_per_token": "0.000003", "output_usd_per_token": "0.000015"},
}


unique = examples.unique


def judged(result: str) -> float:
    labels = {"task": "article", "result": result}
    return REGISTRY.get_sample_value("infou_quality_judge_total", labels) or 0.0


@pytest.fixture
def judge_settings(
    llm_settings: Callable[..., GenerationSettings],
) -> Callable[..., GenerationSettings]:
    def make(**overrides: Any) -> GenerationSettings:
        values: dict[str, Any] = {
            "llm_routes": {"article": ["openai"]},
            "llm_providers": PRICES,
            "anthropic_model": "claude-haiku-4-5",  # $1 + $5 per million: the cheapest here
            "local_llm_base_url": "",
            "llm_max_retries": 0,
            "quality_llm_judge": True,
            **overrides,
        }
        return llm_settings(**values)

    return make


@pytest.fixture
async def engines(
    generation_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Callable[[GenerationSettings], GenerationEngine]]:
    made: list[GenerationEngine] = []

    def make(settings: GenerationSettings) -> GenerationEngine:
        engine = build_engine(settings, generation_sessions)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()


async def ledger_rows(
    sessions: async_sessionmaker[AsyncSession], generation_id: str
) -> list[LLMCall]:
    async with sessions() as session:
        rows = await session.scalars(
            select(LLMCall).where(LLMCall.generation_id == generation_id).order_by(LLMCall.id)
        )
        return list(rows)


def test_the_judge_goes_to_the_cheapest_configured_model(
    llm_settings: Callable[..., GenerationSettings],
) -> None:
    haiku = llm_settings(anthropic_model="claude-haiku-4-5", local_llm_base_url="")
    assert haiku.route("quality_judge") == ["anthropic"]
    nano = llm_settings(openai_model="gpt-4.1-nano", local_llm_base_url="")
    assert nano.route("quality_judge") == ["openai"]
    offline = GenerationSettings(openai_api_key="", anthropic_api_key="", local_llm_base_url="")
    assert offline.route("quality_judge") == []


async def test_with_the_judge_off_no_judge_call_is_made(
    judge_settings: Callable[..., GenerationSettings],
    engines: Callable[[GenerationSettings], GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = engines(judge_settings(quality_llm_judge=False))
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    generated = await engine.generate(
        "article", unique(examples.article_context()), generation_id=generation_id
    )

    assert generated.quality is not None
    assert generated.quality.passed
    assert generated.quality.judge is None
    assert [c.task for c in await ledger_rows(generation_sessions, generation_id)] == ["article"]
    assert (await fake_llm.stats())["total"] == 1
    report = quality_report(generated)
    assert report is not None
    assert "judge" not in report


async def test_a_fitting_verdict_costs_one_call_on_the_ledger_and_the_budget(
    judge_settings: Callable[..., GenerationSettings],
    engines: Callable[[GenerationSettings], GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = engines(judge_settings())
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    spent_before = (await engine.router.budget.status()).spent_usd
    passed_before = judged("passed")
    generated = await engine.generate(
        "article", unique(examples.article_context()), generation_id=generation_id
    )

    assert generated.provider == "openai"
    assert generated.attempts == 1
    assert generated.quality is not None
    assert generated.quality.passed
    assert generated.quality.judge is not None
    assert generated.quality.judge["status"] == "judged"
    assert generated.quality.judge["fits_level"] is True
    assert generated.quality.judge["provider"] == "anthropic"
    assert generated.quality.judge["model"].startswith("claude-haiku-4-5")
    calls = await ledger_rows(generation_sessions, generation_id)
    assert [(c.task, c.provider, c.status) for c in calls] == [
        ("article", "openai", "ok"),
        ("quality_judge", "anthropic", "ok"),
    ]
    judge_call = calls[1]
    assert judge_call.cost_usd > 0
    # The judge's tokens and cost count with the article's, and the day's budget holds both.
    assert generated.input_tokens == sum(c.input_tokens for c in calls)
    assert generated.cost_usd.quantize(Decimal("0.000001")) == sum(c.cost_usd for c in calls)
    spent_after = (await engine.router.budget.status()).spent_usd
    assert spent_after - spent_before == sum(c.cost_usd for c in calls)
    assert judged("passed") == passed_before + 1
    stats = await fake_llm.stats()
    assert [r["schema_name"] for r in stats["recent"]] == ["infou_article", "infou_quality_judge"]
    report = quality_report(generated)
    assert report is not None
    assert report["judge"]["passed"] is True


async def test_an_unfit_verdict_fails_the_gate_after_the_regeneration(
    judge_settings: Callable[..., GenerationSettings],
    engines: Callable[[GenerationSettings], GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = engines(judge_settings())
    await fake_llm.arm("judge_unfit", times=-1)
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    failed_before = judged("failed")
    with pytest.raises(QualityBelowThresholdError) as failed:
        await engine.generate(
            "article", unique(examples.article_context()), generation_id=generation_id
        )

    report = failed.value.report
    assert report is not None
    assert not report.passed
    assert "llm_judge:level_mismatch" in report.warnings
    assert report.judge is not None
    assert report.judge["fits_level"] is False
    # Written twice on the only provider of the route, each judged, then no one else to ask.
    calls = await ledger_rows(generation_sessions, generation_id)
    assert [c.task for c in calls] == ["article", "quality_judge", "article", "quality_judge"]
    assert judged("failed") == failed_before + 2
    stats = await fake_llm.stats()
    # The regeneration was told what the judge found (our warning codes only).
    article_requests = [r for r in stats["recent"] if r["schema_name"] == "infou_article"]
    assert len(article_requests) == 2


async def test_an_unfit_verdict_sends_the_article_to_the_next_provider(
    judge_settings: Callable[..., GenerationSettings],
    engines: Callable[[GenerationSettings], GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = engines(judge_settings(llm_routes={"article": ["openai", "anthropic"]}))
    # The judge refuses both openai answers and accepts the next provider's.
    await fake_llm.arm("judge_unfit", times=2, task="quality_judge")
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    generated = await engine.generate(
        "article", unique(examples.article_context()), generation_id=generation_id
    )

    assert generated.provider == "anthropic"
    assert generated.attempts == 3
    assert generated.quality is not None
    assert generated.quality.passed
    assert generated.quality.judge is not None
    assert generated.quality.judge["fits_level"] is True
    calls = await ledger_rows(generation_sessions, generation_id)
    assert [(c.task, c.provider) for c in calls] == [
        ("article", "openai"),
        ("quality_judge", "anthropic"),
        ("article", "openai"),
        ("quality_judge", "anthropic"),
        ("article", "anthropic"),
        ("quality_judge", "anthropic"),
    ]
    assert (await fake_llm.stats())["scenarios"] == {"judge_unfit": 2}


async def test_a_failing_judge_leaves_the_article_passed_and_says_unavailable(
    judge_settings: Callable[..., GenerationSettings],
    engines: Callable[[GenerationSettings], GenerationEngine],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = engines(judge_settings())
    await fake_llm.arm("server_error", times=-1, task="quality_judge")
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    unavailable_before = judged("unavailable")
    generated = await engine.generate(
        "article", unique(examples.article_context()), generation_id=generation_id
    )

    assert generated.attempts == 1
    assert generated.quality is not None
    assert generated.quality.passed
    assert generated.quality.judge is not None
    assert generated.quality.judge["status"] == "unavailable"
    assert judged("unavailable") == unavailable_before + 1
    calls = await ledger_rows(generation_sessions, generation_id)
    assert [(c.task, c.status) for c in calls] == [("article", "ok"), ("quality_judge", "error")]
    report = quality_report(generated)
    assert report is not None
    assert report["judge"]["status"] == "unavailable"


async def test_without_a_real_provider_the_article_is_judged_by_heuristics_only(
    engines: Callable[[GenerationSettings], GenerationEngine],
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = GenerationSettings(
        openai_api_key="", anthropic_api_key="", local_llm_base_url="", quality_llm_judge=True
    )
    engine = engines(settings)
    generation_id = f"gen_{uuid.uuid4().hex[:8]}"
    generated = await engine.generate(
        "article", unique(examples.article_context()), generation_id=generation_id
    )

    assert generated.quality is not None
    assert generated.quality.judge is not None
    assert generated.quality.judge["status"] == "skipped"
    assert [c.task for c in await ledger_rows(generation_sessions, generation_id)] == ["article"]
