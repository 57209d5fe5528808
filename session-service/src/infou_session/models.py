"""session schema: learning sessions, their articles and level variants (PRD §4.3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.crypto import EncryptedJSON, EncryptedText
from infou_libs.db import schema_metadata
from infou_libs.idempotency import idempotency_table
from infou_libs.outbox import outbox_tables

SCHEMA = "session"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)
idempotency_keys = idempotency_table(Base.metadata)

ACTIVE_STATUSES = ("initializing", "generating", "ready", "active")


class LearningSession(Base):
    __tablename__ = "learning_sessions"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    main_topic_id: Mapped[int] = mapped_column(Integer)
    # What the learner chose, resolved when the session was created (names, outcomes, …), so
    # the curriculum and the prompts never depend on later catalog edits.
    main_topic: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )
    selected_subtopics: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    target_level: Mapped[str] = mapped_column(String(20))
    # Learner text (goals, interests): ciphertext at rest, NULL once the retention job erased it.
    personalization_settings: Mapped[dict[str, Any] | None] = mapped_column(
        EncryptedJSON, default=dict
    )
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
    generation_llm_model: Mapped[str | None] = mapped_column(String(200))
    generation_total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    generation_input_tokens: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0
    )
    generation_output_tokens: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0
    )
    # The ledger's precision: a session of cheap calls must not round to nothing.
    generation_cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal("0"))
    generation_cached_results: Mapped[int] = mapped_column(
        Integer, server_default=text("0"), default=0
    )
    # What the content served from the cache cost when it was generated (USD saved).
    generation_saved_usd: Mapped[Decimal] = mapped_column(
        Numeric(12, 6), server_default=text("0"), default=Decimal("0")
    )
    generation_duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    generation_completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    estimated_cost_usd: Mapped[Decimal] = mapped_column(
        Numeric(8, 4), server_default=text("0"), default=Decimal("0")
    )
    # The generation attempt: 0 for the first run, +1 per retry. Jobs carry it and results of
    # an older attempt are ignored (results.py).
    generation_attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    # Every progress message gets the next number; a snapshot names the last one it reflects.
    progress_sequence: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), default=0)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("idx_learning_sessions_status_created", "status", created_at.desc()),
        Index("uq_learning_sessions_access_token_hash", "access_token_hash", unique=True),
    )


ARTICLE_STATUSES = ("generating", "ready", "failed")


class GeneratedArticle(Base):
    """One curriculum item; its content arrives when its generation job is done."""

    __tablename__ = "generated_articles"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("learning_sessions.id", ondelete="CASCADE"), index=True
    )
    order_num: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    # The article text can show the learner's goals back (its personal section): ciphertext.
    content: Mapped[str | None] = mapped_column(EncryptedText)
    word_count: Mapped[int | None] = mapped_column(Integer)
    planned_read_time: Mapped[str | None] = mapped_column(String(20))
    estimated_read_time: Mapped[str | None] = mapped_column(String(20))
    next_article_id: Mapped[str | None] = mapped_column(String(60))
    previous_article_id: Mapped[str | None] = mapped_column(String(60))
    sub_topic_type: Mapped[str] = mapped_column(String(20))
    sub_topic_id: Mapped[int] = mapped_column(Integer)
    sub_topic_name: Mapped[str] = mapped_column(String(200))
    sub_topic_slug: Mapped[str] = mapped_column(String(100))
    target_level: Mapped[str] = mapped_column(String(20))
    key_concepts: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    difficulty_indicators: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    prerequisites: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    key_terms: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    code_examples_count: Mapped[int] = mapped_column(Integer, default=0)
    practical_tips: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    related_concepts: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    # The structured article as the model wrote it: the source of level conversions. It holds
    # the personal section (`personal_adaptation`), so it is ciphertext, read in Python only.
    body: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    generation_prompt: Mapped[str | None] = mapped_column(Text)
    llm_model: Mapped[str | None] = mapped_column(String(100))
    generation_tokens_used: Mapped[int] = mapped_column(Integer, default=0)
    generation_cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), default=Decimal("0"))
    quality_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    human_reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    content_warnings: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    # The quality gate's report (score, passed, warnings, level fit, checks): metadata.quality.
    quality_report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="generating")
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    generated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (UniqueConstraint("session_id", "order_num", name="unique_session_order"),)


class ArticleVariant(Base):
    """An article rewritten for another level (GET /articles/{id}/convert)."""

    __tablename__ = "article_variants"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("generated_articles.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(20))
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="generating")
    title: Mapped[str | None] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    # The article text can show the learner's goals back (its personal section): ciphertext.
    content: Mapped[str | None] = mapped_column(EncryptedText)
    word_count: Mapped[int | None] = mapped_column(Integer)
    estimated_read_time: Mapped[str | None] = mapped_column(String(20))
    key_terms: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    code_examples_count: Mapped[int] = mapped_column(Integer, default=0)
    practical_tips: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    related_concepts: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    body: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)  # ciphertext too
    generation_prompt: Mapped[str | None] = mapped_column(Text)
    llm_model: Mapped[str | None] = mapped_column(String(100))
    generation_tokens_used: Mapped[int] = mapped_column(Integer, default=0)
    generation_cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), default=Decimal("0"))
    quality_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), default=Decimal("0"))
    content_warnings: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    # The quality gate's report (score, passed, warnings, level fit, checks): metadata.quality.
    quality_report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    generated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (UniqueConstraint("article_id", "level", name="unique_article_level"),)
