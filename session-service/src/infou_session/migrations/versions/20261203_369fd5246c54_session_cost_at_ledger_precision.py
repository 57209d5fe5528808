"""session cost at the ledger's precision (6 decimals, was 4)

Revision ID: 369fd5246c54
Revises: d2a9e5b1c7f3
Create Date: 2026-12-03 07:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "369fd5246c54"
down_revision: str | None = "d2a9e5b1c7f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "learning_sessions",
        "generation_cost_usd",
        type_=sa.Numeric(12, 6),
        existing_type=sa.Numeric(8, 4),
        existing_nullable=False,
        schema="session",
    )


def downgrade() -> None:
    op.alter_column(
        "learning_sessions",
        "generation_cost_usd",
        type_=sa.Numeric(8, 4),
        existing_type=sa.Numeric(12, 6),
        existing_nullable=False,
        schema="session",
    )
