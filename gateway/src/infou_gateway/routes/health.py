"""GET /health (PRD §3.1): every value is measured, a dependency down is named.

The gateway holds no database: `database` is what the services report of their own (gRPC health
name DATABASE_HEALTH), connected when at least one answers and none says its database is away."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from infou_gateway.observability import average_response_ms
from infou_gateway.schemas import HealthResponse
from infou_gateway.state import State
from infou_libs.grpc_server import DATABASE_HEALTH
from infou_libs.metrics import DEPENDENCY_UP
from infou_protos.generation.v1 import generation_pb2
from infou_protos.session.v1 import session_pb2

router = APIRouter(tags=["health"])


async def _bounded(coro: Any, timeout: float, default: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, timeout)
    except Exception:
        return default


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "a dependency is down"}},
)
async def health(state: State) -> JSONResponse:
    timeout = state.settings.health_timeout_seconds
    clients = state.clients
    names = list(clients.channels)
    results = await asyncio.gather(
        _bounded(state.cache.ping(), timeout, False),
        _bounded(
            clients.generation.GetEngineStatus(
                generation_pb2.GetEngineStatusRequest(), timeout=timeout
            ),
            timeout,
            None,
        ),
        _bounded(
            clients.session.GetSessionStats(session_pb2.GetSessionStatsRequest(), timeout=timeout),
            timeout,
            None,
        ),
        *(_bounded(clients.health(name, timeout), timeout, "unavailable") for name in names),
        *(
            _bounded(clients.health(name, timeout, DATABASE_HEALTH), timeout, "unavailable")
            for name in names
        ),
    )
    redis_up, engine, stats = results[:3]
    service_health = dict(zip(names, results[3 : 3 + len(names)], strict=True))
    databases = results[3 + len(names) :]
    db_up = "serving" in databases and "not_serving" not in databases
    nats_up = bool(state.nc and state.nc.is_connected)
    workers = engine.workers_alive if engine else 0

    services: dict[str, Any] = {
        "database": "connected" if db_up else "disconnected",
        "redis": "connected" if redis_up else "disconnected",
        "nats": "connected" if nats_up else "disconnected",
        "llm_providers": list(engine.providers) if engine else [],
        # The PRD names the worker pool "celery"; InfoU's workers are JetStream consumers.
        "celery": f"active_workers_{workers}",
        "generation_workers": f"active_workers_{workers}",
        **{f"{name}_service": status for name, status in service_health.items()},
    }
    degraded = [k for k in ("database", "redis", "nats") if services[k] != "connected"]
    degraded += [f"{n}_service" for n, s in service_health.items() if s != "serving"]
    if engine is not None and workers == 0:
        degraded.append("generation_workers")
    for dep in ("database", "redis", "nats"):
        DEPENDENCY_UP.labels(dep).set(int(dep not in degraded))

    body = HealthResponse(
        status="degraded" if degraded else "healthy",
        version=state.settings.version,
        services=services,
        metrics={
            "avg_response_time": f"{round(average_response_ms())}ms",
            "active_sessions": stats.active_sessions if stats else 0,
            "generation_queue": engine.pending_jobs if engine else 0,
        },
        degraded=degraded,
    )
    return JSONResponse(body.model_dump(), status_code=503 if degraded else 200)
