"""/health never crashes: a dependency down is named, and the answer is 503 degraded."""

import asyncio
from typing import Any

import httpx

from infou_catalog.main import SPEC as CATALOG
from infou_catalog.settings import CatalogSettings
from infou_devtools.engines import free_port
from infou_devtools.testing import running_service
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings


async def test_everything_down_is_degraded_and_named() -> None:
    closed = free_port()
    addrs: dict[str, Any] = {
        f"{s}_addr": f"127.0.0.1:{closed}"
        for s in ("catalog", "session", "generation", "feedback", "realtime")
    }
    settings = GatewaySettings(
        redis_url=f"redis://127.0.0.1:{closed}/0",
        nats_url=f"nats://127.0.0.1:{closed}",
        **addrs,
        health_timeout_seconds=0.5,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            reply = await client.get("/health")
            on_api_port = await client.get("/metrics")
            async with httpx.AsyncClient() as scraper:
                metrics = await scraper.get(f"http://127.0.0.1:{app.state.metrics_port}/metrics")
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "degraded"
    assert {"database", "redis", "nats", "catalog_service", "generation_service"} <= set(
        body["degraded"]
    )
    assert body["services"]["database"] == "disconnected"
    assert body["services"]["catalog_service"] == "unavailable"
    assert body["metrics"]["generation_queue"] == 0
    # Metrics are served on their own port, not the public one.
    assert on_api_port.status_code == 404
    assert metrics.status_code == 200
    assert "infou_http_request_duration_seconds" in metrics.text
    assert 'infou_dependency_up{dependency="redis"} 0.0' in metrics.text


async def test_healthy_dependencies_are_reported_connected(
    database_url: str, redis_url: str, nats_url: str
) -> None:
    closed = free_port()
    # The gateway holds no database: catalog-service reports its own.
    catalog_settings = CatalogSettings(
        environment="test", database_url=database_url, nats_url=nats_url
    )
    addrs: dict[str, Any] = {
        f"{s}_addr": f"127.0.0.1:{closed}"
        for s in ("catalog", "session", "generation", "feedback", "realtime")
    }
    settings = GatewaySettings(
        redis_url=redis_url,
        nats_url=nats_url,
        **addrs,
        health_timeout_seconds=0.5,
    )
    async with running_service(CATALOG, catalog_settings) as catalog_port:
        settings.catalog_addr = f"127.0.0.1:{catalog_port}"
        body = await _health_once_nats_attached(settings)
    services = body["services"]
    assert (services["database"], services["redis"], services["nats"]) == (
        "connected",
        "connected",
        "connected",
    )
    assert "database" not in body["degraded"]
    assert "realtime_service" in body["degraded"]


async def _health_once_nats_attached(settings: GatewaySettings) -> dict[str, Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # NATS attaches in the background: the gateway serves before it is connected.
            for _ in range(50):
                body: dict[str, Any] = (await client.get("/health")).json()
                if body["services"]["nats"] == "connected":
                    break
                await asyncio.sleep(0.1)
    return body
