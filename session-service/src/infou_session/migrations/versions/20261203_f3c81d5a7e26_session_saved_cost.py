"""what the content cache saved a session (generation_info.saved_cost), at the ledger's precision

Revision ID: f3c81d5a7e26
Revises: 5b1e7c3a9d20
Create Date: 2026-12-03 10:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3c81d5a7e26"
down_revision: str | None = "5b1e7c3a9d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "learning_sessions",
        sa.Column(
            "generation_saved_usd",
            sa.Numeric(12, 6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        schema="session",
    )


def downgrade() -> None:
    op.drop_column("learning_sessions", "generation_saved_usd", schema="session")
