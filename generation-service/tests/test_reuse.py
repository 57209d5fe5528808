"""Content reuse (content/reuse.py): the cache key is the sub-topic, level, slot, prompt version
and model family; pace is not in it; articles are written without learner text (shared), and
only personalised sub-topics are keyed on it. The learner's own section over a shared article
is tested in test_personal_adaptation.py."""

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import content_examples as examples
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.fakellm import FakeLLMControl
from infou_generation.content import prompts, reuse
from infou_generation.engine import GenerationEngine, build_engine
from infou_generation.models import ContentCache
from infou_generation.settings import GenerationSettings

PRICES = {"openai": {"input_usd_per_token": "0.000002", "output_usd_per_token": "0.000008"}}
FAMILY = "openai:gpt-4.1"


def key_of(task: str, context: dict[str, Any], family: str = FAMILY) -> reuse.ContentKey:
    """The key the engine computes: over the rendered shared context (no pace, no learner text)."""
    rendered = prompts.render(task, reuse.shared_context(task, context))
    return reuse.content_key(task, rendered.context, family=family)


def anonymous(context: dict[str, Any]) -> dict[str, Any]:
    """The context of a learner who wrote nothing (only pace, length and examples chosen)."""
    context["personalization"] = {
        "learning_pace": "regular",
        "preferred_article_length": context["options"]["preferred_article_length"],
        "include_examples": context["options"]["include_examples"],
    }
    return context


def with_personalization(context: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**context, "personalization": {**context["personalization"], **changes}}


def saved(task: str) -> float:
    value = REGISTRY.get_sample_value("infou_generation_cache_saved_usd_total", {"task": task})
    return value or 0.0


# ── the key ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "base", [examples.article_context(), anonymous(examples.article_context())]
)
def test_a_pace_only_change_keeps_the_article_key(base: dict[str, Any]) -> None:
    keys = {
        key_of("article", with_personalization(base, learning_pace=pace)).value
        for pace in ("slow", "regular", "intensive")
    }
    assert len(keys) == 1
    assert key_of("article", with_personalization(base, learning_pace="fast")) == key_of(
        "article", base
    )


def test_a_pace_only_change_keeps_the_curriculum_key() -> None:
    context = examples.curriculum_context()
    fast = with_personalization(context, learning_pace="fast")
    assert key_of("curriculum", fast) == key_of("curriculum", context)


def test_level_slot_variant_prompt_and_model_change_the_key() -> None:
    context = anonymous(examples.article_context(level="beginner"))
    key = key_of("article", context).value
    others = {
        "level": key_of("article", {**context, "level": "advanced"}),
        "slot": key_of("article", {**context, "outline": {**context["outline"], "order": 3}}),
        "sub_topic": key_of("article", anonymous(examples.article_context("supervised"))),
        "length": key_of("article", anonymous(examples.article_context(length="long"))),
        "practice": key_of(
            "article", anonymous(examples.article_context(include_practice_problems=True))
        ),
        "model family": key_of("article", context, family="anthropic:claude-sonnet-4-6"),
    }
    assert all(other.value != key for other in others.values()), others
    rendered = prompts.render("article", context).context
    assert reuse.content_key("article", rendered, family=FAMILY, version="older").value != key


def test_a_dated_model_snapshot_is_the_same_family() -> None:
    assert reuse.model_family("openai", "gpt-4.1-2025-04-14") == "openai:gpt-4.1"
    assert reuse.model_family("anthropic", "claude-haiku-4-5-20251001") == (
        "anthropic:claude-haiku-4-5"
    )
    assert reuse.model_family("openai", "gpt-4.1-mini") != reuse.model_family("openai", "gpt-4.1")


def test_learner_text_does_not_change_the_article_key() -> None:
    shared = anonymous(examples.article_context())
    mine = with_personalization(shared, learning_goals="사내 챗봇 만들기")
    interests = with_personalization(shared, interests=["음악"], preferred_style="실습 위주")
    keys = {key_of("article", c) for c in (shared, mine, interests)}
    assert len(keys) == 1
    assert not next(iter(keys)).personal


def test_learner_text_makes_a_personal_sub_topics_key_of_its_own() -> None:
    base = examples.subtopics_context()
    mine = with_personalization(base, learning_goals="사내 챗봇 만들기")
    theirs = with_personalization(base, learning_goals="논문 요약 자동화")
    keys = [key_of("subtopics", c) for c in (mine, theirs)]
    assert all(k.personal for k in keys)
    assert keys[0].value != keys[1].value
    # The same text again (the same learner, another pace) finds its own entry.
    again = with_personalization(mine, learning_pace="slow")
    assert key_of("subtopics", again) == keys[0]


# ── through the engine ────────────────────────────────────────────────────────────────


@pytest.fixture
async def engine(
    llm_settings: Any, generation_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[GenerationEngine]:
    settings: GenerationSettings = llm_settings(
        llm_routes={"article": ["openai"]}, llm_providers=PRICES
    )
    made = build_engine(settings, generation_sessions)
    yield made
    await made.aclose()


def stored_key(engine: GenerationEngine, context: dict[str, Any]) -> str:
    return engine.cache_key("article", prompts.render("article", context).context).value


def fresh(context: dict[str, Any]) -> dict[str, Any]:
    """The context with an outline no other test uses (the cache is shared by the run)."""
    title = f"{context['outline']['title']} {uuid.uuid4().hex[:8]}"
    return {**context, "outline": {**context["outline"], "title": title}}


async def test_a_pace_only_change_is_served_from_the_cache_and_saves_what_it_cost(
    engine: GenerationEngine,
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    context = fresh(anonymous(examples.article_context()))
    saved_before = saved("article")
    first = await engine.generate("article", context)
    calls = (await fake_llm.stats())["total"]
    second = await engine.generate(
        "article", with_personalization(context, learning_pace="intensive")
    )

    assert not first.cache_hit
    assert first.cost_usd > 0
    assert first.saved_usd == 0
    assert second.cache_hit
    assert (await fake_llm.stats())["total"] == calls  # no provider call
    assert second.data == first.data
    assert second.cost_usd == 0
    assert second.saved_usd == first.cost_usd.quantize(Decimal("0.000001"))
    assert saved("article") == pytest.approx(saved_before + float(second.saved_usd))
    async with generation_sessions() as session:
        row = await session.get(ContentCache, stored_key(engine, context))
    assert row is not None
    assert (row.personal, row.model_family) == (False, FAMILY)


async def test_articles_are_written_without_learner_text_and_shared(
    engine: GenerationEngine,
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    base = fresh(anonymous(examples.article_context()))
    goal_a = f"사내 추천 시스템 구축 {uuid.uuid4().hex[:6]}"
    goal_b = f"사진 자동 분류기 만들기 {uuid.uuid4().hex[:6]}"
    learner_a = with_personalization(base, learning_goals=goal_a, interests=["음악"])
    learner_b = with_personalization(base, learning_goals=goal_b)

    written_for_a = await engine.generate("article", learner_a)
    for_b = await engine.generate("article", learner_b)
    nobody = await engine.generate("article", base)

    # The learner text never reached the prompt, so it cannot be in the shared article.
    assert goal_a not in str(written_for_a.data)
    assert for_b.cache_hit
    assert nobody.cache_hit
    assert for_b.data == nobody.data == written_for_a.data
    assert (await fake_llm.stats())["total"] == 1
    async with generation_sessions() as session:
        row = await session.get(ContentCache, stored_key(engine, base))
    assert row is not None
    assert not row.personal
