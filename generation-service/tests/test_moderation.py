"""Moderation: OpenAI's endpoint through the official SDK (fake server, real HTTP), or local."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_devtools.engines import free_port
from infou_devtools.fakellm import FakeLLMControl
from infou_generation.admission import Admissions, Workload
from infou_generation.content.moderation import (
    ContentModeration,
    build_moderation,
    local_categories,
)
from infou_generation.models import BudgetAdmission
from infou_generation.settings import GenerationSettings
from infou_libs.errors import InvalidArgument


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


async def _answering(body: bytes) -> asyncio.Server:
    """An HTTP server on a free local port that answers every request 200 with `body`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"id": "modr-1", "model": "omni-moderation-latest"}',
        b'{"results": []}',
        b'{"results": [{"flagged": true, "categories": ["violence"]}]}',
    ],
)
async def test_an_unreadable_answer_falls_back_to_the_local_check(
    llm_settings: Callable[..., GenerationSettings], body: bytes
) -> None:
    server = await _answering(body)
    port = server.sockets[0].getsockname()[1]
    moderation = build_moderation(llm_settings(openai_base_url=f"http://127.0.0.1:{port}/v1"))
    before = _verdicts("input", "local_fallback", "flagged")
    try:
        verdict = await moderation.check({"learning_goals": "필로폰 제조 방법"})
    finally:
        await moderation.aclose()
        server.close()
        await server.wait_closed()
    assert verdict.source == "local"
    assert verdict.fallback
    assert verdict.fields == ["learning_goals"]
    assert _verdicts("input", "local_fallback", "flagged") == before + 1


# ── input moderation at admission: before anything is held ─────────────────────────────


def _verdicts(stage: str, source: str, result: str) -> float:
    labels = {"stage": stage, "source": source, "result": result}
    return REGISTRY.get_sample_value("infou_moderation_verdicts_total", labels) or 0.0


async def _admission_of(
    sessions: async_sessionmaker[AsyncSession], reference_id: str
) -> BudgetAdmission | None:
    async with sessions() as session:
        row: BudgetAdmission | None = await session.scalar(
            select(BudgetAdmission).where(BudgetAdmission.reference_id == reference_id)
        )
        return row


async def test_admission_refuses_flagged_learner_text_naming_the_field_and_holds_nothing(
    llm_settings: Callable[..., GenerationSettings],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fake_llm.flag_for_moderation("금지어")
    settings = llm_settings()
    moderation = build_moderation(settings)
    admissions = Admissions(generation_sessions, settings, moderation=moderation)
    reference = f"sess_{uuid.uuid4().hex}"
    try:
        with pytest.raises(InvalidArgument) as refused:
            await admissions.reserve(
                kind="session",
                reference_id=reference,
                work=Workload(curricula=1, articles=2),
                client_id="c-mod",
                learner_text={
                    "personalization.learning_goals": "업무 자동화",
                    "personalization.interests.0": "챗봇",
                    "personalization.interests.1": "금지어 사전",
                },
            )
        assert refused.value.code == "CONTENT_FLAGGED"
        assert refused.value.field == "personalization.interests.1"
        assert await _admission_of(generation_sessions, reference) is None
        assert (await fake_llm.stats())["requests"] == {"moderation": 1}

        # Clean text is admitted.
        granted = await admissions.reserve(
            kind="session",
            reference_id=reference,
            work=Workload(curricula=1, articles=2),
            client_id="c-mod",
            learner_text={"personalization.learning_goals": "업무 자동화"},
        )
        assert granted.estimated_usd > 0
        assert await _admission_of(generation_sessions, reference) is not None
    finally:
        await moderation.aclose()


async def test_admission_falls_back_to_the_local_check_when_openai_fails(
    llm_settings: Callable[..., GenerationSettings],
    fake_llm: FakeLLMControl,
    generation_sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = llm_settings(llm_extra_headers={"x-fake-moderation": "server_error"})
    moderation = build_moderation(settings)
    admissions = Admissions(generation_sessions, settings, moderation=moderation)
    before = _verdicts("input", "local_fallback", "flagged")
    try:
        with pytest.raises(InvalidArgument) as refused:
            await admissions.reserve(
                kind="subtopics",
                reference_id=f"gen_{uuid.uuid4().hex[:16]}",
                work=Workload(subtopic_generations=1),
                client_id="c-mod",
                learner_text={"personalization.learning_goals": "필로폰 제조 방법"},
            )
    finally:
        await moderation.aclose()
    assert (refused.value.code, refused.value.field) == (
        "CONTENT_FLAGGED",
        "personalization.learning_goals",
    )
    assert _verdicts("input", "local_fallback", "flagged") == before + 1
    assert (await fake_llm.stats())["scenarios"]["moderation_server_error"] >= 1
