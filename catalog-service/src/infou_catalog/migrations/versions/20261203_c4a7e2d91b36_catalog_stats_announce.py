"""catalog statistics announcements coalesced per topic

Revision ID: c4a7e2d91b36
Revises: 50626d8aa477
Create Date: 2026-12-03 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4a7e2d91b36"
down_revision: str | None = "50626d8aa477"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "main_topics",
        sa.Column("stats_announced_at", sa.DateTime(timezone=True), nullable=True),
        schema="catalog",
    )
    op.add_column(
        "main_topics",
        sa.Column(
            "stats_announce_pending",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        schema="catalog",
    )


def downgrade() -> None:
    op.drop_column("main_topics", "stats_announce_pending", schema="catalog")
    op.drop_column("main_topics", "stats_announced_at", schema="catalog")
