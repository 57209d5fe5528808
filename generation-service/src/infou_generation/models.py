"""generation schema: worker liveness now; providers, ledger and content cache with their issue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.db import schema_metadata
from infou_libs.outbox import outbox_tables

SCHEMA = "generation"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)


class WorkerHeartbeat(Base):
    """One row per generation worker; a worker is alive while its heartbeat is fresh."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
