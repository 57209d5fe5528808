"""feedback schema: session analytics now; feedback and progress logs with their issue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import DateTime, Integer, Numeric, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.db import schema_metadata
from infou_libs.outbox import outbox_tables

SCHEMA = "feedback"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)


class SessionAnalytics(Base):
    __tablename__ = "session_analytics"

    session_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    completion_rate: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    avg_time_per_article: Mapped[int] = mapped_column(Integer, default=0)
    total_engagement_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    positive_feedback_count: Mapped[int] = mapped_column(Integer, default=0)
    negative_feedback_count: Mapped[int] = mapped_column(Integer, default=0)
    avg_difficulty_rating: Mapped[Decimal] = mapped_column(Numeric(2, 1), default=Decimal("0"))
    level_switches_count: Mapped[int] = mapped_column(Integer, default=0)
    most_used_level: Mapped[str | None] = mapped_column(String(20))
    preferred_article_length: Mapped[int | None] = mapped_column(Integer)
    last_calculated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
