"""realtime schema: the WebSocket connection registry (PRD §4.4)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Index, Integer, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.crypto import EncryptedText
from infou_libs.db import schema_metadata
from infou_libs.outbox import outbox_tables

SCHEMA = "realtime"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)


class WebsocketConnection(Base):
    __tablename__ = "websocket_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(String(100), unique=True)
    session_id: Mapped[str] = mapped_column(String(50))
    gateway_id: Mapped[str | None] = mapped_column(String(100))
    client_ip: Mapped[str | None] = mapped_column(EncryptedText)
    user_agent: Mapped[str | None] = mapped_column(EncryptedText)
    connected_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_ping_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    disconnect_reason: Mapped[str | None] = mapped_column(String(50))

    __table_args__ = (
        Index(
            "idx_websocket_connections_session_active",
            "session_id",
            postgresql_where=text("is_active = TRUE"),
        ),
    )
