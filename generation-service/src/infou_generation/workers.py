"""Generation workers: liveness heartbeats (the job consumers arrive with their issues)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import repository
from infou_libs.db import unit_of_work
from infou_libs.logging import get_logger

log = get_logger(__name__)


class WorkerPresence:
    """Announces this process's worker every few seconds; removes it on clean shutdown."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], concurrency: int, interval: float
    ) -> None:
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._sessions = sessions
        self._concurrency = concurrency
        self._interval = interval

    async def run(self) -> None:
        while True:
            try:
                async with unit_of_work(self._sessions) as session:
                    await repository.beat(
                        session, self.worker_id, socket.gethostname(), self._concurrency
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker_heartbeat_failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def leave(self) -> None:
        async with unit_of_work(self._sessions) as session:
            await repository.forget_worker(session, self.worker_id)
