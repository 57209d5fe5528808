"""ledger rows for calls in flight: 'started' before the call, 'interrupted' when it was cut

Revision ID: e5a9c3b71f28
Revises: e5a7c3b9d1f2
Create Date: 2026-12-03 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a9c3b71f28"
down_revision: str | None = "e5a7c3b9d1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "'ok', 'rate_limited', 'error', 'invalid_output', 'budget_refused', 'cache_hit'"
_NEW_STATUSES = _OLD_STATUSES + ", 'started', 'interrupted'"


def upgrade() -> None:
    op.add_column(
        "llm_calls",
        sa.Column("estimated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="generation",
    )
    op.drop_constraint(op.f("ck_llm_calls_status"), "llm_calls", schema="generation", type_="check")
    op.create_check_constraint(
        "status", "llm_calls", f"status IN ({_NEW_STATUSES})", schema="generation"
    )


def downgrade() -> None:
    # Rows of calls cut short keep their estimate as an error row.
    op.execute(
        "UPDATE generation.llm_calls SET status = 'error' "
        "WHERE status IN ('started', 'interrupted')"
    )
    op.drop_constraint(op.f("ck_llm_calls_status"), "llm_calls", schema="generation", type_="check")
    op.create_check_constraint(
        "status", "llm_calls", f"status IN ({_OLD_STATUSES})", schema="generation"
    )
    op.drop_column("llm_calls", "estimated", schema="generation")
