"""personal adaptations of shared content: the learner's section, encrypted, apart from the cache

Revision ID: f1b2c3d4e5a6
Revises: e5a9c3b71f28
Create Date: 2026-12-03 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f1b2c3d4e5a6"
down_revision: str | None = "e5a9c3b71f28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "content_adaptations",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("base_key", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=30), nullable=False),
        sa.Column("prompt_version", sa.String(length=40), nullable=False),
        sa.Column("model_family", sa.String(length=100), nullable=False),
        # Ciphertext (infou_libs.crypto.EncryptedJSON): the section holds learner text.
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("input_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cost_usd",
            sa.Numeric(precision=10, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("hits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_content_adaptations")),
        schema="generation",
    )
    op.create_index(
        "ix_content_adaptations_base_key",
        "content_adaptations",
        ["base_key"],
        unique=False,
        schema="generation",
    )
    op.create_index(
        "ix_content_adaptations_created_at",
        "content_adaptations",
        ["created_at"],
        unique=False,
        schema="generation",
    )
    # Content written with learner text before this revision is personal whole-article cache
    # (no longer looked up: those keys are not computed any more); it is erased with personal
    # data by retention like before.


def downgrade() -> None:
    op.drop_index(
        "ix_content_adaptations_created_at",
        table_name="content_adaptations",
        schema="generation",
    )
    op.drop_index(
        "ix_content_adaptations_base_key", table_name="content_adaptations", schema="generation"
    )
    op.drop_table("content_adaptations", schema="generation")
