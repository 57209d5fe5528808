"""random public ids for generated sub-topics

Revision ID: a1d3f0c2b7e4
Revises: 96909102cda1
Create Date: 2026-12-03 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1d3f0c2b7e4"
down_revision: str | None = "96909102cda1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "generation"


def upgrade() -> None:
    op.add_column(
        "generated_sub_topics",
        sa.Column("public_id", sa.String(length=40), nullable=True),
        schema=SCHEMA,
    )
    # Rows made before: 122 random bits each (gen_random_uuid is built into PostgreSQL 13+).
    op.execute(
        "UPDATE generation.generated_sub_topics "
        "SET public_id = replace(gen_random_uuid()::text, '-', '')"
    )
    op.alter_column("generated_sub_topics", "public_id", nullable=False, schema=SCHEMA)
    op.create_unique_constraint(
        op.f("uq_generated_sub_topics_public_id"),
        "generated_sub_topics",
        ["public_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_generated_sub_topics_public_id"),
        "generated_sub_topics",
        schema=SCHEMA,
        type_="unique",
    )
    op.drop_column("generated_sub_topics", "public_id", schema=SCHEMA)
