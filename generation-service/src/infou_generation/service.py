"""generation use cases."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from infou_generation import repository
from infou_libs.messaging import JOBS_STREAM, pending_messages


@dataclass(frozen=True)
class EngineStatus:
    providers: list[str]
    workers_alive: int
    pending_jobs: int


async def engine_status(
    session: AsyncSession, js: JetStreamContext, providers: list[str], heartbeat_seconds: float
) -> EngineStatus:
    # A worker that missed three heartbeats is taken for dead.
    alive = await repository.count_alive(session, dt.timedelta(seconds=3 * heartbeat_seconds))
    return EngineStatus(providers, alive, await pending_messages(js, JOBS_STREAM))
