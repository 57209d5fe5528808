"""LLM cost ledger (llm_calls) and the daily budget with its reservations

Revision ID: 80b2d7b10b3e
Revises: 588801806ca0
Create Date: 2026-11-26 06:23:31.090453
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "80b2d7b10b3e"
down_revision: str | None = "588801806ca0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_budget_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("limit_usd", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column(
            "spent_usd",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "reserved_usd",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_llm_budget_days")),
        schema="generation",
    )
    op.create_table(
        "llm_budget_reservations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount_usd", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("task", sa.String(length=30), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_budget_reservations")),
        schema="generation",
    )
    op.create_index(
        "ix_llm_budget_reservations_expires_at",
        "llm_budget_reservations",
        ["expires_at"],
        unique=False,
        schema="generation",
    )
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("task", sa.String(length=30), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("input_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cost_usd",
            sa.Numeric(precision=10, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("latency_ms", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("generation_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ok', 'rate_limited', 'error', 'invalid_output', 'budget_refused')",
            name=op.f("ck_llm_calls_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
        schema="generation",
    )
    op.create_index(
        "ix_llm_calls_created_at", "llm_calls", ["created_at"], unique=False, schema="generation"
    )
    op.create_index(
        "ix_llm_calls_generation_id",
        "llm_calls",
        ["generation_id"],
        unique=False,
        schema="generation",
    )
    op.create_index(
        "ix_llm_calls_session_id", "llm_calls", ["session_id"], unique=False, schema="generation"
    )


def downgrade() -> None:
    op.drop_index("ix_llm_calls_session_id", table_name="llm_calls", schema="generation")
    op.drop_index("ix_llm_calls_generation_id", table_name="llm_calls", schema="generation")
    op.drop_index("ix_llm_calls_created_at", table_name="llm_calls", schema="generation")
    op.drop_table("llm_calls", schema="generation")
    op.drop_index(
        "ix_llm_budget_reservations_expires_at",
        table_name="llm_budget_reservations",
        schema="generation",
    )
    op.drop_table("llm_budget_reservations", schema="generation")
    op.drop_table("llm_budget_days", schema="generation")
