"""Kubernetes probes of the gateway: /live (the process answers) and /ready (it takes traffic).

Both answer for the gateway itself. A downstream service or engine being away is reported by
/health (PRD §3.1) but never takes the gateway out of the load balancer or restarts it: every
replica would leave at once, and the degraded answers (503 with the error body) are better than
none. /ready turns 503 only while this replica drains on SIGTERM.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infou_gateway.state import GatewayState

router = APIRouter(tags=["health"], include_in_schema=False)


@router.get("/live")
async def live() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state: GatewayState | None = getattr(request.app.state, "gateway", None)
    if state is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    if state.draining.is_set():
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})
