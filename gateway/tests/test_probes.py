"""/live and /ready answer for the gateway itself; /health still names what is down."""

from typing import Any

import httpx

from infou_devtools.engines import free_port
from infou_gateway.app import create_app
from infou_gateway.settings import GatewaySettings


async def test_the_gateway_stays_live_and_ready_while_everything_behind_it_is_down() -> None:
    closed = free_port()
    addrs: dict[str, Any] = {
        f"{s}_addr": f"127.0.0.1:{closed}"
        for s in ("catalog", "session", "generation", "feedback", "realtime")
    }
    settings = GatewaySettings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/infou",
        redis_url=f"redis://127.0.0.1:{closed}/0",
        nats_url=f"nats://127.0.0.1:{closed}",
        **addrs,
        health_timeout_seconds=0.5,
        rate_limit_per_minute=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/health")
            live = await client.get("/live")
            ready = await client.get("/ready")
            app.state.gateway.draining.set()
            draining = await client.get("/ready")
            still_live = await client.get("/live")
    assert health.status_code == 503
    assert (live.status_code, ready.status_code) == (200, 200)
    assert ready.json() == {"status": "ready"}
    assert draining.status_code == 503
    assert draining.json() == {"status": "draining"}
    assert still_live.status_code == 200
