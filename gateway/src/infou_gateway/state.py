"""What the gateway holds while it runs, reachable from routes through FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from infou_gateway.apikeys import ApiKeys
from infou_gateway.cache import ResponseCache
from infou_gateway.clients import ServiceClients
from infou_gateway.quotas import Quotas
from infou_gateway.settings import GatewaySettings
from infou_gateway.wslimits import ConnectionSlots


@dataclass
class GatewayState:
    settings: GatewaySettings
    clients: ServiceClients
    cache: ResponseCache
    nc: NatsClient | None
    db: AsyncEngine
    quotas: Quotas
    api_keys: ApiKeys
    ws_slots: ConnectionSlots


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(_state)]
