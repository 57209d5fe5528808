"""Input hardening and security headers at the edge: refusals come before any backend call."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from infou_devtools.engines import free_port
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings

SESSION = {"main_topic_id": 1, "sub_topic_ids": ["curated_1"], "level": "beginner"}


def _settings(**overrides: Any) -> GatewaySettings:
    # Every backend is a closed port: whatever reaches one fails, what is refused never does.
    closed = free_port()
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/infou",
        "redis_url": f"redis://127.0.0.1:{closed}/0",
        "nats_url": f"nats://127.0.0.1:{closed}",
        "grpc_deadline_seconds": 0.5,
        **{
            f"{s}_addr": f"127.0.0.1:{closed}"
            for s in ("catalog", "session", "generation", "feedback", "realtime")
        },
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(public_url="https://api.infou.example"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_an_oversized_body_is_413_before_it_is_parsed(api: httpx.AsyncClient) -> None:
    big = {**SESSION, "personalization": {"learning_goals": "x" * (2 * 1024 * 1024)}}
    reply = await api.post("/sessions", json=big)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(40):
            yield b"x" * 4096

    reply = await api.post(
        "/sessions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {**SESSION, "personalization": {"learning_goals": "a\x00b"}},
            "personalization.learning_goals",
        ),
        (
            {**SESSION, "personalization": {"interests": ["ok", "b\x1bad"]}},
            "personalization.interests.1",
        ),
        ({**SESSION, "sub_topic_ids": ["curated_1\x00"]}, "sub_topic_ids.0"),
        ({**SESSION, "level": "beginner\x7f"}, "level"),
    ],
)
async def test_control_characters_in_a_body_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    reply = await api.post("/sessions", json=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == field


async def test_tabs_and_newlines_are_text(api: httpx.AsyncClient) -> None:
    body = {**SESSION, "personalization": {"learning_goals": "line one\n\tline two"}}
    reply = await api.post("/sessions", json=body)
    # Past the edge: the (closed) session service answers, not the hardening.
    assert reply.status_code == 503


async def test_control_characters_in_query_and_path_are_422_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    reply = await api.get("/main-topics", params={"category": "tech\x00"})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "category"
    for path, field in (
        ("/sessions/sess%00x", "session_id"),
        ("/sessions/sess%20x/curriculum", "session_id"),
        ("/articles/a%01b", "article_id"),
        ("/main-topics/ai%00ml", "slug"),
        ("/sub-topics/generated/gen%00x", "generation_id"),
        (f"/sessions/{'s' * 65}", "session_id"),
    ):
        reply = await api.get(path)
        assert reply.status_code == 422, path
        assert reply.json()["error"]["field"] == field, path


async def test_unavailable_service_is_503_with_retry_after(api: httpx.AsyncClient) -> None:
    reply = await api.get("/levels")
    assert reply.status_code == 503
    assert int(reply.headers["retry-after"]) > 0


async def test_method_not_allowed_carries_allow(api: httpx.AsyncClient) -> None:
    reply = await api.delete("/levels")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "GET"


async def test_security_headers(api: httpx.AsyncClient) -> None:
    levels = await api.get("/levels")
    created = await api.post("/sessions", json=SESSION)
    refused = await api.post("/sessions", content=b"x" * 70_000)
    for reply in (levels, created, refused):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["strict-transport-security"].startswith("max-age=")
    # What may carry a token or personal data is never stored by a cache.
    assert created.headers["cache-control"] == "no-store"
    assert (await api.get("/sessions/sess_x")).headers["cache-control"] == "no-store"
    assert levels.headers.get("cache-control") != "no-store"


async def test_no_hsts_without_https_and_docs_can_be_turned_off() -> None:
    app = create_app(_settings(public_url="http://localhost:8000", docs_enabled=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            levels = await client.get("/levels")
            docs = await client.get("/docs")
            schema = await client.get("/openapi.json")
    assert "strict-transport-security" not in levels.headers
    assert docs.status_code == 404
    assert schema.status_code == 404


def test_docs_are_off_by_default_in_production_only() -> None:
    assert _settings().serves_docs
    production = GatewaySettings.model_construct(environment="production", docs_enabled=None)
    assert not production.serves_docs
