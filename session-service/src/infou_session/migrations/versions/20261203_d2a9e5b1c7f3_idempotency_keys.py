"""idempotency keys of POST /sessions

Revision ID: d2a9e5b1c7f3
Revises: cb6b27b4ef01
Create Date: 2026-12-03 07:32:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d2a9e5b1c7f3"
down_revision: str | None = "cb6b27b4ef01"
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
        schema="session",
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema="session")
