"""Moderation: OpenAI's endpoint through the official SDK (fake server, real HTTP), or local."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infou_devtools.engines import free_port
from infou_devtools.fakellm import FakeLLMControl
from infou_generation.content.moderation import (
    ContentModeration,
    build_moderation,
    local_categories,
)
from infou_generation.settings import GenerationSettings


async def test_openai_moderation_flags_the_fields_the_endpoint_flags(
    llm_settings: Callable[..., GenerationSettings], fake_llm: FakeLLMControl
) -> None:
    await fake_llm.flag_for_moderation("금지어")
    moderation = build_moderation(llm_settings())
    try:
        verdict = await moderation.check(
            {
                "learning_goals": "업무 자동화 도구 개발",
                "interests": "챗봇과 금지어 목록",
                "custom_topic": "",
            }
        )
    finally:
        await moderation.aclose()
    assert verdict.source == "openai"
    assert verdict.fields == ["interests"]
    assert verdict.findings[0].categories == ("violence",)
    stats = await fake_llm.stats()
    # One request for the batch; the empty field was not sent.
    assert stats["requests"] == {"moderation": 1}


async def test_openai_moderation_passes_clean_text(
    llm_settings: Callable[..., GenerationSettings], fake_llm: FakeLLMControl
) -> None:
    moderation = build_moderation(llm_settings())
    try:
        verdict = await moderation.check(
            {"content": "캐시란 자주 쓰는 자료를 가까이 두는 방법입니다."}
        )
    finally:
        await moderation.aclose()
    assert verdict.source == "openai"
    assert not verdict.flagged
    assert (await fake_llm.stats())["requests"] == {"moderation": 1}


async def test_the_fake_moderation_knob_flags_everything(
    llm_settings: Callable[..., GenerationSettings],
    fake_llm: FakeLLMControl,  # noqa: ARG001 — requested so the fake server runs
) -> None:
    moderation = build_moderation(llm_settings(llm_extra_headers={"x-fake-moderation": "flag"}))
    try:
        verdict = await moderation.check({"a": "안녕하세요", "b": "좋은 아침입니다"})
    finally:
        await moderation.aclose()
    assert verdict.fields == ["a", "b"]


def test_without_openai_the_local_check_is_used() -> None:
    settings = GenerationSettings(anthropic_api_key="sk-ant-test")
    assert build_moderation(settings).client is None


async def test_local_check_flags_harmful_phrases_and_names_the_field() -> None:
    moderation = ContentModeration(None)
    verdict = await moderation.check(
        {
            "learning_goals": "폭탄 만드는 법을 배우고 싶어요",
            "interests": "프로세스를 kill 하는 방법과 자살률 통계",
        }
    )
    assert verdict.source == "local"
    assert verdict.fields == ["learning_goals"]
    assert verdict.findings[0].categories == ("illicit/violent",)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("죽고 싶다는 생각이 들어요", "self-harm"),
        ("I will kill you", "violence"),
        ("필로폰 제조 과정", "illicit"),
        ("how to make a bomb", "illicit/violent"),
        ("인종 청소가 필요하다", "hate"),
        ("죽여\u200b 버리겠다", "violence"),  # a zero-width space does not hide it
    ],
)
def test_local_patterns(text: str, category: str) -> None:
    assert category in local_categories(text)


@pytest.mark.parametrize(
    "text",
    [
        "kill -9 로 프로세스를 종료합니다",
        "자살률은 경제 지표와 함께 해석해야 합니다",
        "폭탄 세일 기간에는 수요가 늘어납니다",
        "경쟁사를 죽이는 가격 전략의 한계",
    ],
)
def test_local_patterns_leave_learning_text_alone(text: str) -> None:
    assert local_categories(text) == ()


async def test_an_unreachable_endpoint_falls_back_to_the_local_check(
    llm_settings: Callable[..., GenerationSettings],
) -> None:
    settings = llm_settings(
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1", moderation_timeout_s=2.0
    )
    moderation = build_moderation(settings)
    try:
        verdict = await moderation.check({"learning_goals": "필로폰 제조 방법"})
    finally:
        await moderation.aclose()
    assert verdict.source == "local"
    assert verdict.fields == ["learning_goals"]
