"""the session's generation attempt: jobs carry it, results of an older attempt are ignored

Revision ID: a4c7e2d9b613
Revises: f3c81d5a7e26
Create Date: 2026-12-03 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c7e2d9b613"
down_revision: str | None = "f3c81d5a7e26"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "learning_sessions",
        sa.Column("generation_attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="session",
    )


def downgrade() -> None:
    op.drop_column("learning_sessions", "generation_attempt", schema="session")
