"""idempotency keys of POST /sub-topics/generate

Revision ID: c4f8a2d6e913
Revises: b7e2c91f4d05
Create Date: 2026-12-03 07:32:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f8a2d6e913"
down_revision: str | None = "b7e2c91f4d05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_idempotency_keys")),
        schema="generation",
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema="generation")
