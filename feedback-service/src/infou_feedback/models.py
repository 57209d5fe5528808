"""feedback schema: article feedback, learning progress logs, session analytics (PRD §4.5), and
what feedback-service knows of each session and article from session-service.

learning_progress_logs is range-partitioned by month on `timestamp`. Its partitions live in the
schema `feedback_partitions` (partitions.py creates them), so they never look like tables
missing from these models to Alembic's autogenerate, which compares the `feedback` schema.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.crypto import EncryptedText
from infou_libs.db import schema_metadata
from infou_libs.outbox import outbox_tables

SCHEMA = "feedback"
PARTITION_SCHEMA = "feedback_partitions"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)


class TrackedSession(Base):
    """A session as session-service last described it, plus its adaptive-difficulty state.

    Its row is locked by every use case of the session, so one session's feedback and
    progress are applied one at a time (analytics and the adaptive rule see a settled past).
    """

    __tablename__ = "tracked_sessions"

    session_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    main_topic_id: Mapped[int] = mapped_column(Integer)
    session_level: Mapped[str] = mapped_column(String(20))
    # The level the learner reads at now: session_level until a switch (adaptive or manual).
    current_level: Mapped[str] = mapped_column(String(20))
    level_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    adaptive_difficulty: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    total_articles: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    article_ids: Mapped[list[str]] = mapped_column(ARRAY(String(60)), server_default=text("'{}'"))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TrackedArticle(Base):
    """An article as session-service last described it (level, sub-topic, length)."""

    __tablename__ = "tracked_articles"

    article_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(50), index=True)
    level: Mapped[str] = mapped_column(String(20))
    sub_topic_type: Mapped[str] = mapped_column(String(20))
    sub_topic_id: Mapped[int] = mapped_column(Integer)
    word_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class ArticleFeedback(Base):
    """One session's feedback on one article (PRD §4.5); a later submission replaces it."""

    __tablename__ = "article_feedback"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(60))
    session_id: Mapped[str] = mapped_column(String(50))
    rating: Mapped[str] = mapped_column(String(20))
    feedback_types: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    comments: Mapped[str | None] = mapped_column(EncryptedText)
    difficulty_perceived: Mapped[str | None] = mapped_column(String(20))
    user_level_at_time: Mapped[str | None] = mapped_column(String(20))
    time_spent_reading: Mapped[int | None] = mapped_column(Integer)
    scroll_depth: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("session_id", "article_id", name="uq_article_feedback_session_article"),
        Index("idx_article_feedback_rating_created", "rating", created_at.desc()),
        Index("idx_article_feedback_session_updated", "session_id", updated_at.desc()),
    )


PROGRESS_ACTIONS = ("started", "completed", "bookmarked", "skipped", "level_switched")


class LearningProgressLog(Base):
    """One learning progress entry (PRD §4.5), partitioned by month on `timestamp`."""

    __tablename__ = "learning_progress_logs"

    # The partition key must be part of the primary key of a partitioned table.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    timestamp: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    session_id: Mapped[str] = mapped_column(String(50))
    article_id: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(20))
    level: Mapped[str | None] = mapped_column(String(20))
    from_level: Mapped[str | None] = mapped_column(String(20))
    to_level: Mapped[str | None] = mapped_column(String(20))
    time_spent_seconds: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    scroll_depth: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    engagement_score: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    device_type: Mapped[str | None] = mapped_column(String(20))
    referrer_url: Mapped[str | None] = mapped_column(EncryptedText)

    __table_args__ = (
        Index("idx_progress_logs_session_timestamp", "session_id", timestamp.desc()),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )


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
    # Beyond the PRD: the totals behind the rates.
    completed_articles: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    total_time_spent: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    feedback_count: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    last_calculated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
