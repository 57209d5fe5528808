"""budget admissions: requests hold their estimate before anything is queued

Revision ID: b7e2c91f4d05
Revises: a1d3f0c2b7e4
Create Date: 2026-12-03 07:31:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e2c91f4d05"
down_revision: str | None = "a1d3f0c2b7e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "generation"


def upgrade() -> None:
    op.add_column(
        "llm_budget_days",
        sa.Column(
            "admitted_usd",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "budget_admissions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("reference_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("estimated_usd", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column(
            "spent_usd",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'open'"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'closed')", name=op.f("ck_budget_admissions_status")
        ),
        sa.CheckConstraint(
            "kind IN ('session', 'subtopics')", name=op.f("ck_budget_admissions_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_admissions")),
        sa.UniqueConstraint("reference_id", name=op.f("uq_budget_admissions_reference_id")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_budget_admissions_day_client_id",
        "budget_admissions",
        ["day", "client_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_budget_admissions_open_expires_at",
        "budget_admissions",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_budget_admissions_open_expires_at",
        table_name="budget_admissions",
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index(
        "ix_budget_admissions_day_client_id", table_name="budget_admissions", schema=SCHEMA
    )
    op.drop_table("budget_admissions", schema=SCHEMA)
    op.drop_column("llm_budget_days", "admitted_usd", schema=SCHEMA)
