"""A create the gateway stopped waiting for answers 503 with Retry-After (the create may have
happened: a retry with the same Idempotency-Key returns it), never 504."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from infou_devtools.engines import free_port
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a service stuck under load)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_create_past_its_deadline_is_503_with_retry_after(
    redis_url: str, silent_port: int
) -> None:
    closed = free_port()
    settings = GatewaySettings(
        redis_url=redis_url,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x",
        nats_url=f"nats://127.0.0.1:{closed}",
        rate_limit_per_minute=0,
        grpc_deadline_seconds=0.5,
        session_addr=f"127.0.0.1:{silent_port}",
        generation_addr=f"127.0.0.1:{silent_port}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            session = await client.post(
                "/sessions",
                json={"main_topic_id": 1, "sub_topic_ids": ["curated_1"], "level": "beginner"},
                headers={"Idempotency-Key": "retry-me"},
            )
            generation = await client.post("/sub-topics/generate", json={"main_topic_id": 1})
    for reply in (session, generation):
        assert reply.status_code == 503, reply.text
        assert reply.headers["Retry-After"] == "2"
        assert reply.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
