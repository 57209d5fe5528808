"""session schema: learning sessions (PRD §4.3); curricula and articles arrive with their issue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Index, Integer, Numeric, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.db import schema_metadata
from infou_libs.outbox import outbox_tables

SCHEMA = "session"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)

ACTIVE_STATUSES = ("initializing", "generating", "ready", "active")


class LearningSession(Base):
    __tablename__ = "learning_sessions"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    main_topic_id: Mapped[int] = mapped_column(Integer)
    selected_subtopics: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    target_level: Mapped[str] = mapped_column(String(20))
    personalization_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    generation_options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    access_token_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="initializing")
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    curriculum_title: Mapped[str | None] = mapped_column(String(300))
    curriculum_generated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    total_articles: Mapped[int] = mapped_column(Integer, default=0)
    completed_articles: Mapped[int] = mapped_column(Integer, default=0)
    current_article_id: Mapped[str | None] = mapped_column(String(50))
    last_accessed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    total_time_spent: Mapped[int] = mapped_column(Integer, default=0)
    generation_llm_model: Mapped[str | None] = mapped_column(String(50))
    generation_total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    generation_cost_usd: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal("0"))
    generation_duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (Index("idx_learning_sessions_status_created", "status", created_at.desc()),)
