"""POST /sub-topics/generate and GET /sub-topics/generated/{id}: contract, bad input, 404s.

The gateway runs its real lifespan in front of real generation- and catalog-services, all on a
NATS server and a database private to this module; the LLM is the offline composer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infou_catalog.main import SPEC as CATALOG_SPEC
from infou_catalog.settings import CatalogSettings
from infou_devtools.testing import running_service
from infou_gateway.app import create_app
from infou_gateway.routes.subtopics import ACCEPTED_MESSAGE
from infou_gateway.settings import GatewaySettings
from infou_generation.main import SPEC as GENERATION_SPEC
from infou_generation.settings import GenerationSettings
from infou_libs.crypto import keyring
from infou_libs.db import asyncpg_url

REDIS_DB = 12  # this module's own database on the shared Redis
ITEM_FIELDS = {
    "id",
    "main_topic_id",
    "slug",
    "name",
    "description",
    "estimated_learning_time",
    "prerequisites",
    "practical_projects",
    "learning_outcomes",
    "difficulty_focus",
    "source_type",
}


@pytest.fixture(scope="module")
async def catalog_port(module_database_url: str, module_nats_url: str) -> AsyncIterator[int]:
    settings = CatalogSettings(
        environment="test", database_url=module_database_url, nats_url=module_nats_url
    )
    async with running_service(CATALOG_SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def generation_port(
    module_database_url: str, module_nats_url: str, redis_url: str, catalog_port: int
) -> AsyncIterator[int]:
    settings = GenerationSettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=redis_url,
        catalog_addr=f"127.0.0.1:{catalog_port}",
        openai_api_key="",
        anthropic_api_key="",
        local_llm_base_url="",
    )
    async with running_service(GENERATION_SPEC, settings) as port:
        yield port


@pytest.fixture(scope="module")
async def api(
    module_database_url: str,
    module_nats_url: str,
    redis_url: str,
    catalog_port: int,
    generation_port: int,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        environment="test",
        database_url=module_database_url,
        nats_url=module_nats_url,
        redis_url=urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}")),
        catalog_addr=f"127.0.0.1:{catalog_port}",
        generation_addr=f"127.0.0.1:{generation_port}",
        rate_limit_per_minute=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def body(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "main_topic_id": 1,
        "personalization": {
            "interests": ["chatbot", "automation", "nlp"],
            "current_level": "intermediate",
            "learning_goals": "업무 자동화 도구 개발",
            "time_availability": "regular",
            "preferred_style": "practical",
        },
        "options": {
            "max_subtopics": 5,
            "include_prerequisites": True,
            "difficulty_progression": True,
        },
    }
    value.update(overrides)
    return value


async def completed(api: httpx.AsyncClient, generation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = await api.get(f"/sub-topics/generated/{generation_id}")
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        if result["status"] != "processing":
            return result
        await asyncio.sleep(0.05)
    raise TimeoutError(generation_id)


async def test_generate_answers_at_once_with_the_prd_shape(api: httpx.AsyncClient) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    reply = await api.post("/sub-topics/generate", json=body())
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    assert set(accepted) == {"generation_id", "status", "estimated_completion", "message"}
    assert re.fullmatch(r"gen_[0-9a-f]{16}", accepted["generation_id"])
    assert accepted["status"] == "processing"
    assert accepted["message"] == ACCEPTED_MESSAGE
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", accepted["estimated_completion"])
    eta = dt.datetime.fromisoformat(accepted["estimated_completion"])
    assert before < eta < before + dt.timedelta(minutes=5)


async def test_the_result_lists_personalised_sub_topics(api: httpx.AsyncClient) -> None:
    accepted = (await api.post("/sub-topics/generate", json=body())).json()
    result = await completed(api, accepted["generation_id"])

    assert set(result) == {"generation_id", "status", "items"}
    assert result["generation_id"] == accepted["generation_id"]
    assert result["status"] == "completed"
    assert len(result["items"]) == 5
    curated = (await api.get("/sub-topics/curated", params={"main_slug": "ai-ml"})).json()
    curated_names = {c["name"] for c in curated["items"]}
    names = [item["name"] for item in result["items"]]
    assert len(set(names)) == 5
    assert not set(names) & curated_names
    for item in result["items"]:
        assert set(item) == ITEM_FIELDS
        assert re.fullmatch(r"generated_[A-Za-z0-9_-]{22}", item["id"])
        assert item["main_topic_id"] == 1
        assert item["source_type"] == "generated"
        assert item["estimated_learning_time"]
        assert item["prerequisites"]
        assert 2 <= len(item["practical_projects"]) <= 3
        assert item["learning_outcomes"]


async def test_options_change_the_result(api: httpx.AsyncClient) -> None:
    options = {"max_subtopics": 2, "include_prerequisites": False, "difficulty_progression": False}
    accepted = (await api.post("/sub-topics/generate", json=body(options=options))).json()
    result = await completed(api, accepted["generation_id"])
    assert len(result["items"]) == 2
    assert all(item["prerequisites"] == [] for item in result["items"])
    assert {item["difficulty_focus"] for item in result["items"]} == {"intermediate"}


async def test_only_main_topic_id_is_required(api: httpx.AsyncClient) -> None:
    reply = await api.post("/sub-topics/generate", json={"main_topic_id": 2})
    assert reply.status_code == 202, reply.text
    result = await completed(api, reply.json()["generation_id"])
    assert result["status"] == "completed"
    assert len(result["items"]) == 5
    assert {item["main_topic_id"] for item in result["items"]} == {2}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"personalization": {}}, "main_topic_id"),
        ({"main_topic_id": 0}, "main_topic_id"),
        ({"main_topic_id": "one"}, "main_topic_id"),
        ({"main_topic_id": 1, "options": {"max_subtopics": 0}}, "options.max_subtopics"),
        ({"main_topic_id": 1, "options": {"max_subtopics": 11}}, "options.max_subtopics"),
        (
            {"main_topic_id": 1, "options": {"include_prerequisites": "sometimes"}},
            "options.include_prerequisites",
        ),
        (
            {"main_topic_id": 1, "personalization": {"current_level": "guru"}},
            "personalization.current_level",
        ),
        (
            {"main_topic_id": 1, "personalization": {"interests": "chatbot"}},
            "personalization.interests",
        ),
        (
            {"main_topic_id": 1, "personalization": {"interests": ["x"] * 11}},
            "personalization.interests",
        ),
        (
            {"main_topic_id": 1, "personalization": {"learning_goals": "가" * 501}},
            "personalization.learning_goals",
        ),
    ],
)
async def test_an_invalid_body_is_a_422_naming_the_field(
    api: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    reply = await api.post("/sub-topics/generate", json=payload)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == field


async def test_an_unknown_main_topic_is_a_404(api: httpx.AsyncClient) -> None:
    reply = await api.post("/sub-topics/generate", json=body(main_topic_id=987_654))
    assert reply.status_code == 404, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", "main_topic_id")


@pytest.mark.parametrize("generation_id", ["gen_0123456789abcdef", "gen_abc123"])
async def test_an_unknown_generation_is_a_404(api: httpx.AsyncClient, generation_id: str) -> None:
    reply = await api.get(f"/sub-topics/generated/{generation_id}")
    assert reply.status_code == 404, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", "generation_id")


@pytest.mark.parametrize("generation_id", ["x" * 300, "gen%20x", "gen%00x"])
async def test_a_malformed_generation_id_is_a_422(
    api: httpx.AsyncClient, generation_id: str
) -> None:
    reply = await api.get(f"/sub-topics/generated/{generation_id}")
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["field"] == "generation_id"


async def test_a_failed_generation_says_why(
    api: httpx.AsyncClient, module_database_url: str
) -> None:
    # A generation whose job gave up (the worker's side is tested in generation-service).
    generation_id = "gen_" + uuid.uuid4().hex[:16]
    engine = create_async_engine(asyncpg_url(module_database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO generation.subtopic_generation_requests (generation_batch_id, "
                    "main_topic_id, personalization_input, generation_options, status, "
                    "error_code, error_message, estimated_completion_at, expires_at) VALUES "
                    "(:id, 1, :input, '{}', 'failed', 'LLM_BUDGET_EXCEEDED', :message, now(), "
                    "now() + interval '1 day')"
                ),
                {
                    "id": generation_id,
                    "input": keyring().encrypt(b"{}"),
                    "message": "오늘의 LLM 사용 예산이 모두 소진되었습니다.",
                },
            )
    finally:
        await engine.dispose()
    reply = await api.get(f"/sub-topics/generated/{generation_id}")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "generation_id": generation_id,
        "status": "failed",
        "items": [],
        "error": {
            "code": "LLM_BUDGET_EXCEEDED",
            "message": "오늘의 LLM 사용 예산이 모두 소진되었습니다.",
        },
    }


async def _counts(database_url: str) -> tuple[int, int]:
    """(sub-topic requests, budget admissions) stored so far."""
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as conn:
            requests = await conn.scalar(
                text("SELECT count(*) FROM generation.subtopic_generation_requests")
            )
            admissions = await conn.scalar(
                text("SELECT count(*) FROM generation.budget_admissions")
            )
    finally:
        await engine.dispose()
    return int(requests or 0), int(admissions or 0)


@pytest.mark.parametrize(
    ("personalization", "field"),
    [
        ({"learning_goals": "폭탄 만드는 법을 배우고 싶어요"}, "personalization.learning_goals"),
        ({"interests": ["chatbot", "필로폰 제조"]}, "personalization.interests.1"),
        ({"preferred_style": "I will kill you"}, "personalization.preferred_style"),
    ],
)
async def test_flagged_learner_text_is_a_422_naming_the_field_and_nothing_is_stored(
    api: httpx.AsyncClient,
    module_database_url: str,
    personalization: dict[str, Any],
    field: str,
) -> None:
    # No OpenAI key here: the local check moderates.
    before = await _counts(module_database_url)
    payload = body()
    payload["personalization"] |= personalization
    reply = await api.post("/sub-topics/generate", json=payload)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("CONTENT_FLAGGED", field)
    # Neither the request nor a budget hold was stored.
    assert await _counts(module_database_url) == before


async def test_learning_text_about_hard_subjects_is_not_refused(api: httpx.AsyncClient) -> None:
    payload = body()
    payload["personalization"]["learning_goals"] = "kill -9 로 프로세스 종료와 자살률 통계 분석"
    reply = await api.post("/sub-topics/generate", json=payload)
    assert reply.status_code == 202, reply.text
