"""the quality gate's report of each article and variant (metadata.quality)

Revision ID: 5b1e7c3a9d20
Revises: 8eaa2a2a5ffb
Create Date: 2026-12-03 09:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "5b1e7c3a9d20"
down_revision: str | None = "8eaa2a2a5ffb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("generated_articles", "article_variants")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("quality_report", JSONB(), nullable=True), schema="session")


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "quality_report", schema="session")
