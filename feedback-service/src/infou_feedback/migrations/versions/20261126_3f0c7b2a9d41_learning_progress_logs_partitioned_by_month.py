"""learning progress logs, range-partitioned by month, with a DEFAULT partition

The monthly partitions are created by the service (infou_feedback.partitions), in the schema
feedback_partitions, so that autogenerate, which compares the schema feedback, never mistakes
them for tables missing from the models. The DEFAULT partition takes any row whose month has
no partition yet: no row is ever refused.

Revision ID: 3f0c7b2a9d41
Revises: ad5cd90dd865
Create Date: 2026-11-26 07:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f0c7b2a9d41"
down_revision: str | None = "ad5cd90dd865"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learning_progress_logs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "timestamp",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=50), nullable=False),
        sa.Column("article_id", sa.String(length=60), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=True),
        sa.Column("from_level", sa.String(length=20), nullable=True),
        sa.Column("to_level", sa.String(length=20), nullable=True),
        sa.Column("time_spent_seconds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("scroll_depth", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("engagement_score", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("device_type", sa.String(length=20), nullable=True),
        sa.Column("referrer_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", "timestamp", name=op.f("pk_learning_progress_logs")),
        schema="feedback",
        postgresql_partition_by="RANGE (timestamp)",
    )
    op.create_index(
        "idx_progress_logs_session_timestamp",
        "learning_progress_logs",
        ["session_id", sa.literal_column("timestamp DESC")],
        unique=False,
        schema="feedback",
    )
    op.execute("CREATE SCHEMA IF NOT EXISTS feedback_partitions")
    op.execute(
        "CREATE TABLE feedback_partitions.learning_progress_logs_default "
        "PARTITION OF feedback.learning_progress_logs DEFAULT"
    )


def downgrade() -> None:
    op.drop_index(
        "idx_progress_logs_session_timestamp",
        table_name="learning_progress_logs",
        schema="feedback",
    )
    # Dropping the parent drops every partition with it.
    op.drop_table("learning_progress_logs", schema="feedback")
    op.execute("DROP SCHEMA IF EXISTS feedback_partitions CASCADE")
