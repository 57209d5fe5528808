"""generation schema: workers, cost ledger, budget, content cache, personalised sub-topics."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infou_libs.crypto import EncryptedJSON
from infou_libs.db import schema_metadata
from infou_libs.idempotency import idempotency_table
from infou_libs.outbox import outbox_tables

SCHEMA = "generation"
# 16 random bytes: 22 URL-safe characters, 128 bits no one can enumerate.
PUBLIC_ID_BYTES = 16


def new_public_id() -> str:
    """The random part of a generated sub-topic's public id ("generated_<public_id>")."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


outbox, processed_events = outbox_tables(Base.metadata)
idempotency_keys = idempotency_table(Base.metadata)


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


LLM_CALL_STATUSES = (
    "ok",
    "rate_limited",
    "error",
    "invalid_output",
    "budget_refused",
    "cache_hit",
)


class LLMCall(Base):
    """The cost ledger: one row per provider call, per call refused for budget, and per answer
    served from the content cache (no tokens, no cost; `saved_usd` is what it would have cost).

    A provider call's row is written `started` (with the estimated input) before the call goes
    out and completed with the provider's usage after it, so that a call cut by a crash or a
    cancellation is on the ledger too."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        CheckConstraint(
            "status IN ('ok', 'rate_limited', 'error', 'invalid_output', 'budget_refused', "
            "'cache_hit', 'started', 'interrupted')",
            name="status",
        ),
        Index("ix_llm_calls_created_at", "created_at"),
        Index("ix_llm_calls_session_id", "session_id"),
        Index("ix_llm_calls_generation_id", "generation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(30))
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    input_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cached_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), server_default=text("0"))
    saved_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), server_default=text("0"))
    latency_ms: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(20))
    # The tokens and cost are our estimate, not the provider's report: a call cut short
    # (`interrupted`, or still `started` after its worker died) before the usage came back.
    estimated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    error: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(64))
    generation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class LLMBudgetDay(Base):
    """Spend and open reservations of one budget day; reservations are conditional updates."""

    __tablename__ = "llm_budget_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    limit_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    spent_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), server_default=text("0"))
    reserved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), server_default=text("0"))
    warned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class LLMBudgetReservation(Base):
    """Money held for a call in flight; an expired one (its process died) is given back."""

    __tablename__ = "llm_budget_reservations"
    __table_args__ = (Index("ix_llm_budget_reservations_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    provider: Mapped[str] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


ADMISSION_STATUSES = ("open", "closed")


class BudgetAdmission(Base):
    """A request admitted against the daily budget before anything was queued (admission.py):
    its estimate, what its calls have spent so far, and whether it still holds the rest."""

    __tablename__ = "budget_admissions"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("kind IN ('session', 'subtopics')", name="kind"),
        Index("ix_budget_admissions_day_client_id", "day", "client_id"),
        # What the day's open admissions may still spend is summed over these (admission.py).
        Index(
            "ix_budget_admissions_open_day",
            "day",
            postgresql_where=text("status = 'open'"),
        ),
        Index(
            "ix_budget_admissions_open_expires_at",
            "expires_at",
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The session_id or generation_id its LLM calls are recorded under in the ledger.
    reference_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[dt.date] = mapped_column(Date)
    # Who asked: the gateway's client id (an API key id, or a hash of the address /64).
    client_id: Mapped[str] = mapped_column(String(100))
    estimated_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    spent_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), server_default=text("0"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'open'"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # An admission never released (its session stalled) stops holding budget after this.
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ContentCache(Base):
    """Generated content by its reuse key (content/reuse.py): the same key is served again
    without a provider call (zero tokens, zero cost)."""

    __tablename__ = "content_cache"
    __table_args__ = (Index("ix_content_cache_task_created_at", "task", "created_at"),)

    # sha256 of (task, prompt version, model family, the context without learner text or pace,
    # a keyed hash of the learner text when there is any).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(30))
    prompt_version: Mapped[str] = mapped_column(String(40))
    # provider:model of the route the content was written for (content/reuse.py).
    model_family: Mapped[str] = mapped_column(String(100), server_default=text("''"))
    # Written with learner text: served only to the same text, erased with personal data.
    personal: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    provider: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    input_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # What producing it cost: a hit records this as saved.
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), server_default=text("0"))
    quality_score: Mapped[Decimal | None] = mapped_column(Numeric(4, 3))
    hits: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_hit_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ContentAdaptation(Base):
    """A personal adaptation of shared content (content/adaptation.py): the section written for
    one learner's text over one content cache entry. Personal data: ciphertext at rest, deleted
    with personal data (retention.py)."""

    __tablename__ = "content_adaptations"
    __table_args__ = (
        Index("ix_content_adaptations_created_at", "created_at"),
        Index("ix_content_adaptations_base_key", "base_key"),
    )

    # sha256 of (adaptation version, model family, base_key, a keyed hash of the learner text).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The content cache entry it adapts (content_cache.key).
    base_key: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(30))
    prompt_version: Mapped[str] = mapped_column(String(40))
    model_family: Mapped[str] = mapped_column(String(100))
    # The section ({heading, connection, example}): it holds what the learner wrote.
    data: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    provider: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    input_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # What writing it cost: a hit records this as saved.
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), server_default=text("0"))
    hits: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_hit_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


SUBTOPIC_REQUEST_STATUSES = ("pending", "processing", "completed", "failed")


class SubTopicGenerationRequest(Base):
    """One POST /sub-topics/generate (PRD §4.2 subtopic_generation_requests): input, state, cost."""

    __tablename__ = "subtopic_generation_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed')", name="status"
        ),
        Index("ix_subtopic_generation_requests_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The public generation_id ("gen_…"); groups the sub-topics generated for it.
    generation_batch_id: Mapped[str] = mapped_column(String(50), unique=True)
    main_topic_id: Mapped[int] = mapped_column(Integer)
    user_session_id: Mapped[str | None] = mapped_column(String(100))
    # Learner text: ciphertext at rest, NULL once the retention job erased it.
    personalization_input: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    generation_options: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    generated_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    total_tokens_used: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    llm_cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), server_default=text("0"))
    llm_model: Mapped[str | None] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(40))
    cache_hit: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Deliveries of the job that started work (a redelivery after a crash counts again).
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    estimated_completion_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class GeneratedSubTopic(Base):
    """A personalised sub-topic (PRD §4.2 generated_sub_topics); public id
    "generated_<public_id>"."""

    __tablename__ = "generated_sub_topics"
    __table_args__ = (
        UniqueConstraint("generation_batch_id", "slug"),
        Index("ix_generated_sub_topics_batch_status", "generation_batch_id", "approval_status"),
        Index("ix_generated_sub_topics_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The public id is "generated_<public_id>": random, so sub-topics cannot be enumerated.
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=new_public_id)
    generation_batch_id: Mapped[str] = mapped_column(String(50))
    main_topic_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    estimated_learning_time: Mapped[str | None] = mapped_column(String(50))
    learning_outcomes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    prerequisites: Mapped[list[str]] = mapped_column(ARRAY(Text))
    practical_projects: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # What was asked, without learner text (engine.prompt_excerpt).
    generation_prompt: Mapped[str] = mapped_column(Text)
    llm_model: Mapped[str] = mapped_column(String(100))
    llm_temperature: Mapped[Decimal | None] = mapped_column(Numeric(2, 1))
    generation_params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    personalization_input: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    target_audience: Mapped[str | None] = mapped_column(Text)
    difficulty_focus: Mapped[str | None] = mapped_column(String(20))
    quality_score: Mapped[Decimal] = mapped_column(Numeric(3, 2), server_default=text("0"))
    human_reviewed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    review_notes: Mapped[str | None] = mapped_column(Text)
    approval_status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    usage_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    positive_feedback_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    negative_feedback_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
