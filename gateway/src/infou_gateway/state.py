"""What the gateway holds while it runs, reachable from routes through FastAPI dependencies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client as NatsClient

from infou_gateway.apikeys import ApiKeys
from infou_gateway.cache import ResponseCache
from infou_gateway.clients import ServiceClients
from infou_gateway.quotas import Quotas
from infou_gateway.session_cache import SessionReads
from infou_gateway.settings import GatewaySettings
from infou_gateway.wshub import WatcherHub
from infou_gateway.wslimits import ConnectionSlots


@dataclass
class GatewayState:
    settings: GatewaySettings
    clients: ServiceClients
    cache: ResponseCache
    nc: NatsClient | None
    quotas: Quotas
    api_keys: ApiKeys
    ws_slots: ConnectionSlots
    session_reads: SessionReads
    # Set on SIGTERM: /ready answers 503 and WebSockets close with 1001 (going away).
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    # WebSocket fan-out: one Watch stream per watched session, batched connection records.
    ws: WatcherHub = field(init=False)

    def __post_init__(self) -> None:
        self.ws = WatcherHub(self.settings, self.clients, self.ws_slots, self.draining)


async def _state(request: Request) -> GatewayState:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(_state)]
