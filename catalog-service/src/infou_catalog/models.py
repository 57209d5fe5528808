"""catalog schema: levels, main topics, curated sub-topics (PRD §4.1, §4.6) and their statistics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.db import schema_metadata
from infou_libs.levels import LEVELS
from infou_libs.outbox import outbox_tables

SCHEMA = "catalog"
# The fixed vocabularies of the catalog: level codes in learning order, and topic categories.
LEVEL_CODES = LEVELS
CATEGORIES = ("tech", "business", "science", "humanities", "language", "arts", "life")


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)


class Level(Base):
    __tablename__ = "levels"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    target_audience: Mapped[str | None] = mapped_column(Text)
    characteristics: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    estimated_hours_per_week: Mapped[int | None] = mapped_column(Integer)
    order_num: Mapped[int] = mapped_column(Integer, unique=True)


class MainTopic(Base):
    __tablename__ = "main_topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(30))
    estimated_learning_time: Mapped[str | None] = mapped_column(String(30))
    difficulty_range: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list)
    popularity_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    total_learners: Mapped[int] = mapped_column(Integer, default=0)
    avg_completion_rate: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    generated_subtopic_count: Mapped[int] = mapped_column(Integer, default=0)
    # Running sums behind avg_completion_rate (one latest value per session, SessionCompletion).
    completion_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completion_total: Mapped[Decimal] = mapped_column(
        Numeric(14, 4), default=Decimal("0"), server_default="0"
    )
    # Coalesced statistics announcements (events.announce_statistics): when CatalogChanged last
    # went out for a statistic, and whether a later change still waits for the sweep.
    stats_announced_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    stats_announce_pending: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false"
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("idx_main_topics_category_popularity", "category", popularity_score.desc()),
    )


class CuratedSubTopic(Base):
    __tablename__ = "curated_sub_topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    main_topic_id: Mapped[int] = mapped_column(ForeignKey("main_topics.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    learning_outcomes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    prerequisites: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    levels: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    quality_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    avg_rating: Mapped[Decimal] = mapped_column(Numeric(2, 1), default=Decimal("0"))
    # Running sums behind avg_rating (one latest rating per session and article, CuratedRating).
    rating_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rating_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        UniqueConstraint("main_topic_id", "slug", name="unique_main_curated_slug"),
        Index("idx_curated_subtopics_main_usage", "main_topic_id", usage_count.desc()),
    )


class CuratedRating(Base):
    """The latest rating one session gave one article of a curated sub-topic."""

    __tablename__ = "curated_ratings"

    session_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    article_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    curated_sub_topic_id: Mapped[int] = mapped_column(
        ForeignKey("curated_sub_topics.id", ondelete="CASCADE"), index=True
    )
    score: Mapped[int] = mapped_column(SmallInteger)
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SessionCompletion(Base):
    """The latest completion rate one session reported, counted in its topic's average."""

    __tablename__ = "session_completions"

    session_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    main_topic_id: Mapped[int] = mapped_column(
        ForeignKey("main_topics.id", ondelete="CASCADE"), index=True
    )
    completion_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
