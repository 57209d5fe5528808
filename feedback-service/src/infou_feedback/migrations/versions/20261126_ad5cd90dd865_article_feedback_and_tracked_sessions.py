"""article feedback, and what feedback knows of sessions and articles

Revision ID: ad5cd90dd865
Revises: 8e5545712298
Create Date: 2026-11-26 07:17:27.646484
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ad5cd90dd865"
down_revision: str | None = "8e5545712298"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "article_feedback",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.String(length=60), nullable=False),
        sa.Column("session_id", sa.String(length=50), nullable=False),
        sa.Column("rating", sa.String(length=20), nullable=False),
        sa.Column(
            "feedback_types",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("difficulty_perceived", sa.String(length=20), nullable=True),
        sa.Column("user_level_at_time", sa.String(length=20), nullable=True),
        sa.Column("time_spent_reading", sa.Integer(), nullable=True),
        sa.Column("scroll_depth", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_feedback")),
        sa.UniqueConstraint("session_id", "article_id", name="uq_article_feedback_session_article"),
        schema="feedback",
    )
    op.create_index(
        "idx_article_feedback_rating_created",
        "article_feedback",
        ["rating", sa.literal_column("created_at DESC")],
        unique=False,
        schema="feedback",
    )
    op.create_index(
        "idx_article_feedback_session_updated",
        "article_feedback",
        ["session_id", sa.literal_column("updated_at DESC")],
        unique=False,
        schema="feedback",
    )
    op.create_table(
        "tracked_articles",
        sa.Column("article_id", sa.String(length=60), nullable=False),
        sa.Column("session_id", sa.String(length=50), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("sub_topic_type", sa.String(length=20), nullable=False),
        sa.Column("sub_topic_id", sa.Integer(), nullable=False),
        sa.Column("word_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_tracked_articles")),
        schema="feedback",
    )
    op.create_index(
        op.f("ix_feedback_tracked_articles_session_id"),
        "tracked_articles",
        ["session_id"],
        unique=False,
        schema="feedback",
    )
    op.create_table(
        "tracked_sessions",
        sa.Column("session_id", sa.String(length=50), nullable=False),
        sa.Column("main_topic_id", sa.Integer(), nullable=False),
        sa.Column("session_level", sa.String(length=20), nullable=False),
        sa.Column("current_level", sa.String(length=20), nullable=False),
        sa.Column("level_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "adaptive_difficulty", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("total_articles", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "article_ids",
            postgresql.ARRAY(sa.String(length=60)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_tracked_sessions")),
        schema="feedback",
    )
    for column in ("completed_articles", "total_time_spent", "feedback_count"):
        op.add_column(
            "session_analytics",
            sa.Column(column, sa.Integer(), server_default=sa.text("0"), nullable=False),
            schema="feedback",
        )


def downgrade() -> None:
    for column in ("feedback_count", "total_time_spent", "completed_articles"):
        op.drop_column("session_analytics", column, schema="feedback")
    op.drop_table("tracked_sessions", schema="feedback")
    op.drop_index(
        op.f("ix_feedback_tracked_articles_session_id"),
        table_name="tracked_articles",
        schema="feedback",
    )
    op.drop_table("tracked_articles", schema="feedback")
    op.drop_index(
        "idx_article_feedback_session_updated", table_name="article_feedback", schema="feedback"
    )
    op.drop_index(
        "idx_article_feedback_rating_created", table_name="article_feedback", schema="feedback"
    )
    op.drop_table("article_feedback", schema="feedback")
