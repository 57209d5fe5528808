"""content cache keyed for reuse: model family and personal entries (content/reuse.py)

The key no longer covers the whole context: pace is left out and learner text is in it only as
a keyed hash. Rows under the old keys can never be hit again, and those written with learner
text are not marked personal, so they go.

Revision ID: e5a7c3b9d1f2
Revises: d8fc7db4b5c3
Create Date: 2026-12-03 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a7c3b9d1f2"
down_revision: str | None = "d8fc7db4b5c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM generation.content_cache")
    op.add_column(
        "content_cache",
        sa.Column("model_family", sa.String(100), server_default=sa.text("''"), nullable=False),
        schema="generation",
    )
    op.add_column(
        "content_cache",
        sa.Column("personal", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="generation",
    )


def downgrade() -> None:
    # Rows under the new keys are unreachable under the old ones.
    op.execute("DELETE FROM generation.content_cache")
    op.drop_column("content_cache", "personal", schema="generation")
    op.drop_column("content_cache", "model_family", schema="generation")
